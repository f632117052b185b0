"""Reads about jobs and workers. Every read of a job by id (pages, API, commands) comes through job_get."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from curation.models import Job, WorkerHeartbeat


class JobNotFound(Job.DoesNotExist):
    """No job has the id asked for; the message names it. A Job.DoesNotExist, so the API answers 404."""


def job_get(*, job_id):
    """The job `job_id`, with who started it. Raises JobNotFound."""
    try:
        return Job.objects.select_related("created_by").get(pk=job_id)
    except Job.DoesNotExist:
        raise JobNotFound(f"job {job_id} does not exist") from None


def jobs_list(*, status=None, kind=None):
    """Jobs, newest first, optionally of one status and/or kind."""
    qs = Job.objects.select_related("created_by")
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-id")


def jobs_recent(*, limit=20):
    """The newest jobs started on their own (the home page, `manage.py jobs`): the parts of a job (Job.parent, e.g.
    a scoring job's chunks) are counted on their parent's row of the jobs page, not listed."""
    return jobs_list().filter(parent__isnull=True)[:limit]


def job_latest(*, kind):
    """The newest job of `kind`, or None."""
    return jobs_list(kind=kind).first()


def workers_alive(*, queue=None):
    """Worker processes seen recently, optionally only those that consume `queue`."""
    since = timezone.now() - timedelta(seconds=settings.WORKER_SEEN_WITHIN_SECONDS)
    workers = list(WorkerHeartbeat.objects.filter(last_seen__gte=since))
    if queue:
        workers = [w for w in workers if queue in w.queues.split(",")]
    return workers
