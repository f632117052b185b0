"""The one path a reviewer's or a curator's decision takes, with its consequences: the review page, the grid, dispute
resolution and the REST API call these and only translate HTTP.

- votes, the audit row and undo are the core services' (curation/review/services.py: image_decide,
  images_decide_bulk; curation/review/votes.py: dispute_resolve; every label change through
  curation.services.image_label_change);
- then, once the decisions have committed, the rescore trigger of review rounds ("rescore after every N decisions",
  curation/jobs/rounds.py), whichever page or endpoint the decisions came from.

It sits above the jobs layer (the trigger queues a job), which is why the core services do not call the trigger
themselves.
"""
from typing import Any, NamedTuple

from curation.jobs.rounds import rescore_maybe_enqueue
from curation.models import Image, Job
from curation.review.services import image_decide, images_decide_bulk
from curation.review.votes import dispute_resolve


class Decided(NamedTuple):
    result: Any  # the core service's answer: a Decision, a BulkResult, or the dispute's LabelChange
    rescore: Job | None  # the rescore these decisions made due, queued now; None where none was due


def decision_make(*, user, image_id, **decision):
    """One decision (image_decide's arguments: action, version, label, seconds_spent, override_lease)."""
    result = image_decide(user=user, image_id=image_id, **decision)
    return Decided(result, _rescore_due([image_id] if result.change is not None else []))


def decisions_make_bulk(*, user, items, **decision):
    """The grid's one action on a selection (images_decide_bulk's arguments)."""
    result = images_decide_bulk(user=user, items=items, **decision)
    return Decided(result, _rescore_due(result.decided))


def dispute_decide(*, user, image_id, **decision):
    """A curator's decision on a disputed image (dispute_resolve's arguments: action, version, label, note)."""
    change = dispute_resolve(user=user, image_id=image_id, **decision)
    return Decided(change, _rescore_due([image_id]))


def _rescore_due(image_ids):
    """Queue the rescore that decisions on these images (committed) made due; the first queued, or None. One check
    per dataset the images belong to: rescore_maybe_enqueue counts the dataset's decisions, not the image's."""
    if len(image_ids) > 1:
        image_ids = dict(Image.objects.filter(pk__in=image_ids).values_list("dataset_id", "pk")).values()
    queued = [job for job in (rescore_maybe_enqueue(image_id=pk) for pk in image_ids) if job is not None]
    return queued[0] if queued else None
