"""Leases on images under review: a reviewer holds at most one image at a time, for settings.REVIEW_LEASE_SECONDS,
so that two reviewers are not shown the same image (the grid holds the page it shows). Used by the queue
(curation.review.services) and by votes (curation.review.votes, which gives a reviewer back the image whose vote they withdrew).

Every write is a conditional UPDATE (the image is still free, or still held by this user), which is what keeps two
reviewers from holding one image where the database has no row locks (SQLite).
"""
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q

from curation.models import Image
from curation.review.selectors import claimable


def lease_expiry(now):
    """When a lease taken or renewed at `now` runs out."""
    return now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


def lease_take(images, *, user, now, audit=False):
    """Give `user` the lease on whichever of `images` (a queryset) nobody holds. Returns whether one was taken.
    `audit`: the queue serves it as an audit card (curation/review/audit.py), marked in the same UPDATE."""
    extra = {"audit": True} if audit else {}
    return bool(claimable(images, now=now).update(claimed_by=user, claim_expires_at=lease_expiry(now), **extra))


def lease_take_or_renew(images, *, user, now):
    """Give `user` the lease on each of `images` (a queryset) nobody else holds, renewing the ones they hold.
    Returns how many they now hold of them."""
    mine_or_free = Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=user)
    return images.filter(mine_or_free).update(claimed_by=user, claim_expires_at=lease_expiry(now))


def lease_renew(*, image_id, user, now):
    """Extend `user`'s lease on the image if they still hold it. Returns whether they did."""
    return bool(Image.objects.filter(pk=image_id, claimed_by=user).update(claim_expires_at=lease_expiry(now)))


def leases_release(*, user, except_pks=()):
    """Release every lease `user` holds but those on `except_pks` (the queue's current image, the grid's page)."""
    qs = Image.objects.filter(claimed_by=user)
    if except_pks:
        qs = qs.exclude(pk__in=list(except_pks))
    qs.update(claimed_by=None, claim_expires_at=None)


def lease_give(*, image_id, user, now):
    """Hand `user` the image's lease whatever its state (it just went back to them: an undo), releasing their
    other leases first, as one reviewer holds one image."""
    leases_release(user=user)
    Image.objects.filter(pk=image_id).update(claimed_by=user, claim_expires_at=lease_expiry(now))


def lease_commit_async():
    """A lease is not worth a disk flush: on PostgreSQL the current transaction commits without waiting for its WAL
    to reach the disk (synchronous_commit off for this transaction only; still atomic and crash-safe). A crash
    could forget a claim made in the last fraction of a second before it, which only puts that image back in the
    queue. Decisions keep the server's durable commit."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
