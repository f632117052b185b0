"""Reads for the review queue: which images a reviewer may be offered, what they hold, what they can undo."""
import statistics

from django.db.models import Count, Exists, OuterRef, Q

from curation.models import Image, LabelChange, ReviewSkip
from curation.selectors import images_filter

# How far back undo looks through a reviewer's own changes.
UNDO_LOOKBACK = 500


def review_queue(*, user, dataset, filters=None):
    """Images of `dataset` that `user` may review under `filters` (label code, split, status, flagged,
    min_suspicion), claimed or not: by default the unreviewed ones. Leaves out what the user skipped, and, in a
    pass over already decided images (a status filter), the images whose standing decision is the user's own."""
    filters = filters or {}
    status = filters.get("status") or Image.Status.UNREVIEWED
    qs = _filtered(Image.objects.filter(dataset=dataset, status=status), filters)
    qs = qs.filter(~Exists(ReviewSkip.objects.filter(user=user, image=OuterRef("pk"))))
    if status != Image.Status.UNREVIEWED:
        qs = qs.exclude(reviewed_by=user)
    return qs


def _filtered(qs, filters):
    """Apply the queue's filters other than status."""
    return images_filter(qs, **{k: filters.get(k) for k in ("label", "split", "flagged", "min_suspicion")})


def claimable(qs, *, now):
    """Restrict to images nobody holds: never claimed, released, or with an expired lease."""
    return qs.filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now))


def review_claim_held(*, user, now):
    """The image whose live lease `user` holds, or None."""
    return Image.objects.filter(claimed_by=user, claim_expires_at__gte=now).order_by("-claim_expires_at").first()


def review_last_decision(*, user):
    """The user's latest confirm, relabel or exclude that their own undos have not already taken back, or None.

    Undos pop decisions like a stack, so repeated undo walks back through the user's decisions.
    """
    pending_undos = 0
    recent = LabelChange.objects.filter(user=user).order_by("-id")[:UNDO_LOOKBACK]
    for change in recent:
        if change.action == LabelChange.Action.UNDO:
            pending_undos += 1
        elif pending_undos:
            pending_undos -= 1
        else:
            return change
    return None


# How many of a reviewer's latest decisions the median time per decision is taken over.
PACE_WINDOW = 200


def review_progress(*, user, dataset, filters=None):
    """Progress under `filters` (their status aside: progress counts every status) and `user`'s own pace.

    Returns a dict: total, reviewed (not unreviewed), flagged, flagged_reviewed; mine (the user's decisions on this
    dataset, less their undos) and median_seconds (over their latest PACE_WINDOW timed decisions, or None).
    Three queries, whatever the size of the dataset.
    """
    qs = _filtered(Image.objects.filter(dataset=dataset), filters or {})
    reviewed = ~Q(status=Image.Status.UNREVIEWED)
    # Aliases must not be field names (Django refuses to aggregate over a name it just aggregated).
    counts = qs.aggregate(
        n_total=Count("id"), n_reviewed=Count("id", filter=reviewed), n_flagged=Count("id", filter=Q(flagged=True)),
        n_flagged_reviewed=Count("id", filter=Q(flagged=True) & reviewed),
    )
    progress = {name.removeprefix("n_"): n for name, n in counts.items()}
    mine = LabelChange.objects.filter(user=user, image__dataset=dataset).aggregate(
        decided=Count("id", filter=~Q(action=LabelChange.Action.UNDO)),
        undone=Count("id", filter=Q(action=LabelChange.Action.UNDO)),
    )
    progress["mine"] = mine["decided"] - mine["undone"]
    seconds = list(
        LabelChange.objects.filter(user=user, seconds_spent__isnull=False)
        .exclude(action=LabelChange.Action.UNDO).order_by("-id").values_list("seconds_spent", flat=True)[:PACE_WINDOW]
    )
    progress["median_seconds"] = statistics.median(seconds) if seconds else None
    return progress


def image_label_history(*, image_id):
    """The image's audit rows, oldest first, with who made each."""
    return list(LabelChange.objects.filter(image_id=image_id).select_related("user").order_by("id"))
