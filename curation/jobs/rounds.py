"""Review rounds: after a decision, queue a rescore of the dataset when one is due (curation/classifier/
rescore_params.py). The review pages and the review API call it once a decision has committed."""
import logging

from django.db import transaction

from curation.jobs.errors import JobParamsError
from curation.jobs.services import job_enqueue
from curation.models import Dataset, Image, Job, LabelChange

log = logging.getLogger(__name__)


def rescore_maybe_enqueue(*, image_id):
    """After a decision on `image_id`: queue a rescore of its dataset when one is due (rescore_every decisions since
    the last rescore was queued), unless one is queued or running. Returns the new Job or None. One query where the
    dataset has no rounds turned on. Never raises for a rescore that cannot start: the decision stands, and the
    reason goes to the log."""
    dataset_id = (Dataset.objects.filter(images__pk=image_id, rescore_every__isnull=False)
                  .values_list("pk", flat=True).first())
    if dataset_id is None:
        return None
    with transaction.atomic():  # the dataset row locked: two decisions at once queue one rescore
        dataset = Dataset.objects.select_for_update().only("pk", "name", "rescore_every").get(pk=dataset_id)
        if not dataset.rescore_every:
            return None
        rescores = Job.objects.filter(kind="rescore", params__dataset=dataset.name)
        if rescores.filter(status__in=(Job.Status.QUEUED, Job.Status.RUNNING)).exists():
            return None
        last = rescores.order_by("-created_at").values_list("created_at", flat=True).first()
        decisions = LabelChange.objects.filter(image__dataset_id=dataset.pk, image__split=Image.Split.TRAIN).exclude(
            action=LabelChange.Action.UNDO)
        if last is not None:
            decisions = decisions.filter(created_at__gt=last)
        if decisions.count() < dataset.rescore_every:
            return None
        try:
            return job_enqueue(kind="rescore", params={"dataset": dataset.name})
        except JobParamsError as exc:
            log.warning("rescore of %s is due but cannot start: %s", dataset.name, exc)
            return None
