"""Review queue writes: leases on images, decisions, skips and undo.

The browser queue and the REST API both call these. A label itself changes only in
curation.services.image_label_change, which writes the audit row; these add the queue around it.
"""
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from curation.models import Image, LabelChange, ReviewSkip
from curation.review.selectors import claimable, review_last_decision, review_queue
from curation.services import image_label_change

SKIP = "skip"
DECISIONS = (LabelChange.Action.CONFIRM, LabelChange.Action.RELABEL, LabelChange.Action.EXCLUDE)
ACTIONS = (*[a.value for a in DECISIONS], SKIP)
# Candidates fetched per round where the database has no row locks; a lost race moves on to the next one.
_CANDIDATES_PER_ROUND = 8
_MAX_ROUNDS = 50


class ClaimLost(Exception):
    """The user no longer holds the image: it was decided, or the lease expired and someone else took it."""


class NothingToUndo(Exception):
    """The user has no decision left to undo."""


def _lease_expiry(now):
    return now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


def _take(*, pk, status, user, now):
    """Conditional claim: succeeds only if the image is still in `status` and nobody holds a live lease on it."""
    taken = claimable(Image.objects.filter(pk=pk, status=status), now=now).update(
        claimed_by=user, claim_expires_at=_lease_expiry(now)
    )
    return bool(taken)


def _release_own(*, user, except_pk=None):
    qs = Image.objects.filter(claimed_by=user)
    if except_pk is not None:
        qs = qs.exclude(pk=except_pk)
    qs.update(claimed_by=None, claim_expires_at=None)


def image_claim_next(*, user, dataset, filters=None):
    """Claim the next image of `dataset` for `user` to review and return it, or None when nothing is left.

    Order: most suspicious first (unscored images last), then by id. A user holds one lease at a time: if their
    live lease is on an image that still matches, that image comes back with its lease renewed; otherwise their
    other leases are released first. Leases last settings.REVIEW_LEASE_SECONDS; an expired one is free to take.

    Locks rows: on PostgreSQL the candidate is picked with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent
    reviewers pass over each other's candidates instead of waiting on them. Every claim is also a conditional
    UPDATE (still unclaimed or expired), which is what makes it safe on SQLite (no row locks): a lost race moves
    on to the next candidate.
    """
    filters = filters or {}
    status = filters.get("status") or Image.Status.UNREVIEWED
    now = timezone.now()
    queue = review_queue(user=user, dataset=dataset, filters=filters)

    held = queue.filter(claimed_by=user, claim_expires_at__gte=now).order_by("id").values_list("pk", flat=True).first()
    if held is not None and _take_own(pk=held, user=user, now=now):
        _release_own(user=user, except_pk=held)
        return _claimed(held)
    _release_own(user=user)

    free = claimable(queue, now=now)
    # Two queries rather than one ORDER BY ... NULLS LAST, so that both follow the image_review_queue index.
    for ordered in (free.filter(suspicion__isnull=False).order_by("-suspicion", "id"),
                    free.filter(suspicion__isnull=True).order_by("id")):
        pk = _claim_first(ordered, status=status, user=user, now=now)
        if pk is not None:
            return _claimed(pk)
    return None


def _take_own(*, pk, user, now):
    return bool(Image.objects.filter(pk=pk, claimed_by=user).update(claim_expires_at=_lease_expiry(now)))


def _claim_first(ordered, *, status, user, now):
    skip_locked = connection.features.has_select_for_update_skip_locked
    for _ in range(_MAX_ROUNDS):
        if skip_locked:
            with transaction.atomic():
                pk = ordered.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True).first()
                if pk is None:  # every candidate is gone or being claimed by someone else right now
                    return None
                if _take(pk=pk, status=status, user=user, now=now):
                    return pk
            continue
        candidates = list(ordered.values_list("pk", flat=True)[:_CANDIDATES_PER_ROUND])
        if not candidates:
            return None
        for pk in candidates:
            if _take(pk=pk, status=status, user=user, now=now):
                return pk
    return None


def _claimed(pk):
    return Image.objects.select_related("dataset", "reviewed_by").get(pk=pk)


def image_lease_extend(*, user, image_id):
    """Renew `user`'s lease on the image (while its page is open); returns the new expiry.

    Raises ClaimLost when the user no longer holds it (decided meanwhile, or expired and taken by someone else).
    """
    expires = _lease_expiry(timezone.now())
    if not Image.objects.filter(pk=image_id, claimed_by=user).update(claim_expires_at=expires):
        raise ClaimLost(f"you no longer hold image {image_id}: it was decided, or your lease expired and "
                        f"another reviewer took it")
    return expires


def image_decide(*, user, image_id, action, version=None, label=None, seconds_spent=None):
    """Record `user`'s decision on an image: confirm, relabel (to `label`, a code), exclude, or skip.

    confirm, relabel and exclude go through image_label_change: they need the `version` the user saw (a stale one
    raises VersionConflict and changes nothing) and release the image's lease; they return the LabelChange.
    A skip changes no label: it is recorded as a ReviewSkip row (returned), releases the user's lease, and keeps
    the image from being offered to that user again. Raises Image.DoesNotExist or ValueError (bad action/label).
    """
    if action == SKIP:
        with transaction.atomic():
            if not Image.objects.filter(pk=image_id).exists():
                raise Image.DoesNotExist(f"no image {image_id}")
            skip = ReviewSkip.objects.create(image_id=image_id, user=user, seconds_spent=seconds_spent)
            Image.objects.filter(pk=image_id, claimed_by=user).update(claimed_by=None, claim_expires_at=None)
        return skip
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if version is None:
        raise ValueError(f"{action} needs the version of the image it was made on")
    return image_label_change(image_id=image_id, action=action, expected_version=version, user=user, label=label,
                              seconds_spent=seconds_spent)


class Undo(NamedTuple):
    change: LabelChange  # the new LabelChange, action "undo"
    undone: LabelChange  # the decision it took back


def review_undo(*, user):
    """Take back `user`'s latest decision that still stands; returns an Undo (the new change, the undone one).

    The undo is itself a recorded change restoring the label and status from before the decision. If the image
    goes back to unreviewed, the user gets the lease on it, so that they can decide it again. Raises
    NothingToUndo, or UndoConflict (a VersionConflict) when someone changed the image after the decision.
    """
    target = review_last_decision(user=user)
    if target is None:
        raise NothingToUndo("you have no decision to undo")
    now = timezone.now()
    with transaction.atomic():
        version = Image.objects.values_list("version", flat=True).get(pk=target.image_id)
        change = image_label_change(image_id=target.image_id, action=LabelChange.Action.UNDO,
                                    expected_version=version, user=user, undo_of=target,
                                    note=f"undo of change {target.pk}")
        if change.new_status == Image.Status.UNREVIEWED:
            _release_own(user=user)
            Image.objects.filter(pk=target.image_id).update(claimed_by=user, claim_expires_at=_lease_expiry(now))
    return Undo(change, target)

