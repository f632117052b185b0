"""Reads for the review queue: which images a reviewer may be offered, what they hold, what they can undo."""
import statistics

from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from curation.models import Image, LabelChange, ReviewSkip, ReviewVote
from curation.selectors import images_filter, status_q

# How far back undo looks through a reviewer's own changes.
UNDO_LOOKBACK = 500


def dataset_awaits_scoring(*, dataset):
    """Whether `dataset` has train images (what score_ambiguity scores) but no image with a suspicion yet, the
    order the review queue follows."""
    images = Image.objects.filter(dataset=dataset)
    return (not images.filter(suspicion__isnull=False).exists()
            and images.filter(split=Image.Split.TRAIN).exclude(status=Image.Status.EXCLUDED).exists())


def review_queue(*, user, dataset, filters=None):
    """Images of `dataset` that `user` may review under `filters` (the keys of images_filter), claimed or not: by
    default the unreviewed ones; status "any" means every status. Leaves out what the user skipped, and, in a
    pass over already decided images (a status filter), the images whose standing decision is the user's own.
    Where the dataset needs several reviews, also leaves out disputed images and those the user has voted on in
    their current round."""
    filters = filters or {}
    status = filters.get("status") or Image.Status.UNREVIEWED
    # Disputed images wait for a curator, also after the dataset went back to one review per image.
    qs = Image.objects.filter(dataset=dataset, disputed=False)
    if status_q(status) is not None:
        qs = qs.filter(status_q(status))
    qs = _filtered(qs, filters)
    qs = qs.filter(~Exists(ReviewSkip.objects.filter(user=user, image=OuterRef("pk"))))
    if status != Image.Status.UNREVIEWED:
        qs = qs.exclude(reviewed_by=user)
    if dataset.reviews_required > 1:
        voted = ReviewVote.objects.filter(user=user, image=OuterRef("pk"), version=OuterRef("version"),
                                          withdrawn_at__isnull=True)
        qs = qs.filter(~Exists(voted))
    return qs


FILTER_KEYS = ("label", "original_label", "split", "flagged", "signal", "min_suspicion", "max_suspicion", "run",
               "predicted", "suggested", "selection", "image")


def _filtered(qs, filters):
    """Apply the queue's filters other than status."""
    return images_filter(qs, **{k: filters.get(k) for k in FILTER_KEYS})


def claimable(qs, *, now):
    """Restrict to images nobody holds: never claimed, released, or with an expired lease."""
    return qs.filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now))


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
    dataset, less their undos) and median_seconds (over their latest PACE_WINDOW timed decisions, or None); where
    the dataset needs several reviews, votes (the user's votes that stand). Three or four queries, whatever the
    size of the dataset.
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
    progress["reviews_required"] = dataset.reviews_required
    if dataset.reviews_required > 1:
        progress["votes"] = ReviewVote.objects.filter(user=user, image__dataset=dataset,
                                                      withdrawn_at__isnull=True).count()
    return progress


# Thumbnails per page of the grid view.
GRID_PAGE_SIZE = 48


def review_grid_page(*, user, dataset, filters=None, page=1, per_page=GRID_PAGE_SIZE):
    """One page of the grid view: the images `user` may review under `filters` (as review_queue), in queue order
    (most suspicious first, unscored last, then id), leaving out images another reviewer holds a live lease on.
    The grid claims nothing: its decisions carry the versions shown, and a changed image is a conflict.
    Returns (images, has_next). One query."""
    now = timezone.now()
    qs = review_queue(user=user, dataset=dataset, filters=filters)
    qs = qs.filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=user))
    start = (page - 1) * per_page
    rows = list(qs.order_by(F("suspicion").desc(nulls_last=True), "id")[start:start + per_page + 1])
    return rows[:per_page], len(rows) > per_page
