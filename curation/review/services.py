"""Review queue writes: leases on images, decisions, skips and undo.

The browser queue and the REST API both call these. A label itself changes only in
curation.services.image_label_change, which writes the audit row; these add the queue around it.
"""
from datetime import timezone as dt_timezone
from typing import NamedTuple

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone

from curation.models import Image, LabelChange, ReviewSkip, ReviewVote
from curation.review.audit import audit_labels_lagging, audit_turn
from curation.review.leases import (
    lease_commit_async,
    lease_expiry,
    lease_give,
    lease_renew,
    lease_take,
    lease_take_or_renew,
    leases_release,
)
from curation.review.selectors import claimable, review_last_decision, review_queue
from curation.review.votes import APPLIED, image_vote, vote_latest_open, vote_withdraw
from curation.roles import user_is_curator
from curation.selectors import status_q
from curation.services import VersionConflict, image_label_change

SKIP = "skip"
DECISIONS = (LabelChange.Action.CONFIRM, LabelChange.Action.RELABEL, LabelChange.Action.EXCLUDE)
ACTIONS = (*[a.value for a in DECISIONS], SKIP)
SKIPPED = "skipped"


class Decision(NamedTuple):
    """What image_decide recorded, whatever the action and however many reviews the dataset needs."""
    action: str
    image_id: int
    # APPLIED: the label service changed the image (a decision, or the vote that closed a unanimous round);
    # SKIPPED; PENDING: a vote, more are needed; DISPUTED: a vote that sent the image to the curators.
    outcome: str
    change: LabelChange | None  # the LabelChange written; None for a skip and a vote that did not apply
    vote: ReviewVote | None = None  # on datasets needing several reviews
    skip: ReviewSkip | None = None
# Candidates fetched per round where the database has no row locks; a lost race moves on to the next one.
_CANDIDATES_PER_ROUND = 8
_MAX_ROUNDS = 50


class ClaimLost(Exception):
    """The user no longer holds the image: it was decided, or the lease expired and someone else took it."""


class LeaseHeld(ClaimLost):
    """Someone else holds a live lease on the image: a decision by anyone but the holder is refused."""

    def __init__(self, image_id, holder, until, action):
        when = until.astimezone(dt_timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        super().__init__(f"image {image_id} is held by {holder} until {when} (their review lease); your {action} was "
                         f"not recorded")
        self.image_id, self.holder, self.until = image_id, holder, until


class NothingToUndo(Exception):
    """The user has no decision left to undo."""


def _take(*, pk, status, user, now, audit=False):
    """Conditional claim: succeeds only if the image is still in `status` (any, for "any"), not disputed, and nobody
    holds a live lease on it. `audit`: the image is served as an audit card, and is marked so in the same UPDATE."""
    qs = Image.objects.filter(pk=pk, disputed=False)
    if status_q(status) is not None:
        qs = qs.filter(status_q(status))
    return lease_take(qs, user=user, now=now, audit=audit)


def image_claim_next(*, user, dataset, filters=None):
    """Claim the next image of `dataset` for `user` to review and return it, or None when nothing is left.

    Order: most suspicious first (unscored images last), then by id; except that in the default queue (no filters),
    with the dataset's audit share as probability, the new card is a random audit draw instead, from the given label
    the audit has reached least far (curation/review/audit.py), marked Image.audit. A user holds one lease at a
    time: if their live lease is on an image that still matches, that image comes back with its lease renewed;
    otherwise their other leases are released first. Leases last settings.REVIEW_LEASE_SECONDS; an expired one is
    free to take.

    Locks rows: on PostgreSQL the candidate is picked with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent
    reviewers pass over each other's candidates instead of waiting on them. Every claim is also a conditional
    UPDATE (still unclaimed or expired), which is what makes it safe on SQLite (no row locks): a lost race moves
    on to the next candidate. The release of the user's other leases and the claim are one transaction, which on
    PostgreSQL commits without waiting for the disk (see curation.review.leases.lease_commit_async).
    """
    filters = filters or {}
    status = filters.get("status") or Image.Status.UNREVIEWED
    now = timezone.now()
    queue = review_queue(user=user, dataset=dataset, filters=filters)
    with transaction.atomic():
        lease_commit_async()
        audit = dataset if audit_turn(dataset=dataset, filters=filters) else None
        pk = _claim(queue, status=status, user=user, now=now, audit=audit)
    return _claimed(pk) if pk is not None else None


def _claim(queue, *, status, user, now, audit=None):
    """`audit`: the dataset, when this claim's new card is to be an audit card."""
    held = queue.filter(claimed_by=user, claim_expires_at__gte=now).order_by("id").values_list("pk", flat=True).first()
    if held is not None and lease_renew(image_id=held, user=user, now=now):
        leases_release(user=user, except_pks=[held])
        return held
    leases_release(user=user)
    free = claimable(queue, now=now)
    if audit is not None:
        # The random audit card: the lowest audit key still unreviewed in the label the audit lags most on; a label
        # with nothing left passes to the next. Nothing left anywhere: an ordinary card.
        for code in audit_labels_lagging(dataset=audit):
            pk = _claim_first(free.filter(original_label=code).order_by("audit_key", "id"), status=status,
                              user=user, now=now, audit=True)
            if pk is not None:
                return pk
    # Two queries rather than one ORDER BY ... NULLS LAST, so that both follow the image_review_queue index.
    for ordered in (free.filter(suspicion__isnull=False).order_by("-suspicion", "id"),
                    free.filter(suspicion__isnull=True).order_by("id")):
        pk = _claim_first(ordered, status=status, user=user, now=now)
        if pk is not None:
            return pk
    return None


def _claim_first(ordered, *, status, user, now, audit=False):
    """Inside the caller's transaction: the row locks taken here are held until it commits."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    tried = []  # rows this transaction locked but could not take: its own locks do not make FOR UPDATE skip them
    for _ in range(_MAX_ROUNDS):
        if skip_locked:
            candidates = ordered.exclude(pk__in=tried) if tried else ordered
            pk = candidates.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True).first()
            if pk is None:  # every candidate is gone or being claimed by someone else right now
                return None
            if _take(pk=pk, status=status, user=user, now=now, audit=audit):
                return pk
            tried.append(pk)
            continue
        candidates = list(ordered.values_list("pk", flat=True)[:_CANDIDATES_PER_ROUND])
        if not candidates:
            return None
        for pk in candidates:
            if _take(pk=pk, status=status, user=user, now=now, audit=audit):
                return pk
    return None


def _claimed(pk):
    return Image.objects.select_related("dataset", "reviewed_by").get(pk=pk)


def image_lease_extend(*, user, image_id):
    """Renew `user`'s lease on the image (while its page is open); returns the new expiry.

    Raises ClaimLost when the user no longer holds it (decided meanwhile, or expired and taken by someone else).
    """
    now = timezone.now()
    if not lease_renew(image_id=image_id, user=user, now=now):
        raise ClaimLost(f"you no longer hold image {image_id}: it was decided, or your lease expired and "
                        f"another reviewer took it")
    return lease_expiry(now)


def _lease_for_decision(*, user, image_id, action, override_lease, now):
    """Inside the decision's transaction: `user` takes (or renews) the image's lease, which succeeds when nobody
    else holds a live one; the decision then releases it. Raises LeaseHeld naming the holder and until when,
    Image.DoesNotExist, or PermissionDenied for an override by someone who is not a curator. A curator's
    `override_lease` decides whoever holds it (the holder's own decision then gets a version conflict)."""
    if override_lease:
        if not user_is_curator(user):
            raise PermissionDenied("only curators may override another reviewer's lease (override_lease)")
        return
    for _ in range(3):
        if lease_take_or_renew(Image.objects.filter(pk=image_id), user=user, now=now):
            return
        row = Image.objects.filter(pk=image_id).values_list("claimed_by__username", "claim_expires_at").first()
        if row is None:
            raise Image.DoesNotExist(f"image {image_id} does not exist")
        if row[0] is not None and row[1] is not None and row[1] >= now:
            raise LeaseHeld(image_id, row[0], row[1], action)
        # The holder let go between the update and the read (their decision committed): try again.
    raise LeaseHeld(image_id, row[0] or "another reviewer", row[1] or now, action)


def image_decide(*, user, image_id, action, version=None, label=None, seconds_spent=None, override_lease=False):
    """Record `user`'s decision on an image: confirm, relabel (to `label`, a code), exclude, or skip.

    A relabel to the label the image already has is a confirm (Decision.action says so).
    confirm, relabel and exclude go through image_label_change: they need the `version` the user saw (a stale one
    raises VersionConflict and changes nothing) and release the image's lease. They are refused (LeaseHeld, nothing
    recorded) while someone else holds a live lease on the image, unless a curator sets `override_lease`; an image
    nobody holds is taken by the decision in the same transaction. Where the image's dataset needs
    several reviews (reviews_required > 1) they are votes instead (curation.review.votes.image_vote).
    A skip changes no label: it is recorded as a ReviewSkip row, releases the user's lease, and keeps the image
    from being offered to that user again. Returns a Decision. Raises Image.DoesNotExist, LeaseHeld,
    PermissionDenied (an override by a reviewer) or ValueError (bad action/label).
    """
    if action == SKIP:
        with transaction.atomic():
            if not Image.objects.filter(pk=image_id).exists():
                raise Image.DoesNotExist(f"image {image_id} does not exist")
            skip = ReviewSkip.objects.create(image_id=image_id, user=user, seconds_spent=seconds_spent)
            Image.objects.filter(pk=image_id, claimed_by=user).update(claimed_by=None, claim_expires_at=None)
        return Decision(action, image_id, SKIPPED, None, skip=skip)
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if version is None:
        raise ValueError(f"{action} needs the version of the image it was made on")
    found = Image.objects.filter(pk=image_id).values_list("dataset__reviews_required", "label").first()
    if found is None:
        raise Image.DoesNotExist(f"image {image_id} does not exist")
    needed, current = found
    if action == "relabel" and label is not None and str(label).isdigit() and int(label) == current:
        # The key of the label the image has: that agrees with it, and is recorded (and reported) as a confirm. A
        # label changed since the user looked is caught by the version check, as for any decision.
        action, label = "confirm", None
    with transaction.atomic():
        _lease_for_decision(user=user, image_id=image_id, action=action, override_lease=override_lease,
                            now=timezone.now())
        if needed > 1:
            vote = image_vote(user=user, image_id=image_id, action=action, version=version, label=label,
                              seconds_spent=seconds_spent)
            return Decision(action, image_id, vote.outcome, vote.change, vote=vote)
        change = image_label_change(image_id=image_id, action=action, expected_version=version, user=user,
                                    label=label, seconds_spent=seconds_spent)
    return Decision(action, image_id, APPLIED, change)


class Undo(NamedTuple):
    change: LabelChange | None  # the new LabelChange, action "undo"; None when a vote was withdrawn
    undone: LabelChange | ReviewVote  # the decision it took back, or the withdrawn vote


def review_undo(*, user):
    """Take back `user`'s latest decision that still stands; returns an Undo (the new change, the undone one).

    The undo is itself a recorded change restoring the label and status from before the decision. If the image
    goes back to unreviewed, the user gets the lease on it, so that they can decide it again. Raises
    NothingToUndo, or UndoConflict (a VersionConflict) when someone changed the image after the decision.
    If the user's newest act is a vote whose round is still open (datasets needing several reviews), that vote is
    withdrawn instead (curation.review.votes) and Undo.change is None.
    """
    target = review_last_decision(user=user)
    vote = vote_latest_open(user=user)
    if vote is not None and (target is None or vote.created_at >= target.created_at):
        return Undo(None, vote_withdraw(user=user, vote=vote))
    if target is None:
        raise NothingToUndo("you have no decision to undo")
    now = timezone.now()
    with transaction.atomic():
        version = Image.objects.values_list("version", flat=True).get(pk=target.image_id)
        change = image_label_change(image_id=target.image_id, action=LabelChange.Action.UNDO,
                                    expected_version=version, user=user, undo_of=target,
                                    note=f"undo of change {target.pk}")
        if change.new_status == Image.Status.UNREVIEWED:
            lease_give(image_id=target.image_id, user=user, now=now)
    return Undo(change, target)



def images_claim_shown(*, user, image_ids):
    """The grid claims what it shows: `user` takes the lease on each of `image_ids` nobody else holds (renewing
    their own) and releases their other leases, in one transaction. Returns the set of ids they now hold."""
    now = timezone.now()
    ids = list(image_ids)
    with transaction.atomic():
        lease_commit_async()
        leases_release(user=user, except_pks=ids)
        lease_take_or_renew(Image.objects.filter(pk__in=ids), user=user, now=now)
        return set(Image.objects.filter(pk__in=ids, claimed_by=user).values_list("pk", flat=True))


# Most images one grid action may decide.
BULK_MAX = 200


class BulkResult(NamedTuple):
    decided: list  # image ids whose decision (or vote) was recorded
    conflicts: list  # image ids changed since they were shown: nothing recorded for them
    missing: list  # image ids that no longer exist
    held: list  # LeaseHeld of each image someone else holds: nothing recorded for them


def images_decide_bulk(*, user, items, action, label=None, seconds_spent=None, override_lease=False):
    """The grid's one action on a selection: `items` is [(image id, version shown)], each decided through
    image_decide exactly as one by one (its own transaction and LabelChange, or vote), so a conflict on one image
    changes nothing of it and does not undo the others; an image someone else holds is not decided (unless a
    curator sets `override_lease`). Raises ValueError for a bad action or selection, PermissionDenied for an
    override by a reviewer (image_decide's, before anything is recorded)."""
    if action == SKIP or action not in ACTIONS:
        raise ValueError(f"a grid action is one of {', '.join(a for a in ACTIONS if a != SKIP)}, not {action!r}")
    if not items:
        raise ValueError("select at least one image")
    if len(items) > BULK_MAX:
        raise ValueError(f"at most {BULK_MAX} images per action, not {len(items)}")
    result = BulkResult([], [], [], [])
    for image_id, version in dict(items).items():  # an image listed twice is decided once
        try:
            image_decide(user=user, image_id=image_id, action=action, version=version, label=label,
                         seconds_spent=seconds_spent, override_lease=override_lease)
        except LeaseHeld as exc:
            result.held.append(exc)
        except VersionConflict:
            result.conflicts.append(image_id)
        except Image.DoesNotExist:
            result.missing.append(image_id)
        else:
            result.decided.append(image_id)
    return result
