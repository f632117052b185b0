"""Reads for pages and the API."""
from django.db.models import Count, Q

from curation.models import Dataset, Image, Job


def dataset_summaries():
    return Dataset.objects.annotate(
        n_images=Count("images"),
        n_train=Count("images", filter=Q(images__split=Image.Split.TRAIN)),
        n_val=Count("images", filter=Q(images__split=Image.Split.VAL)),
        n_test=Count("images", filter=Q(images__split=Image.Split.TEST)),
        n_reviewed=Count("images", filter=~Q(images__status=Image.Status.UNREVIEWED)),
    ).order_by("name")


def jobs_recent(*, limit=20):
    return Job.objects.select_related("created_by").order_by("-id")[:limit]
