"""Reads about jobs and workers."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from curation.models import WorkerHeartbeat


def workers_alive(*, queue=None):
    """Worker processes seen recently, optionally only those that consume `queue`."""
    since = timezone.now() - timedelta(seconds=settings.WORKER_SEEN_WITHIN_SECONDS)
    workers = list(WorkerHeartbeat.objects.filter(last_seen__gte=since))
    if queue:
        workers = [w for w in workers if queue in w.queues.split(",")]
    return workers
