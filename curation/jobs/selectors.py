"""Reads about jobs and workers. Every read of a job by id (pages, API, commands) comes through job_get."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from curation.models import GanModel, Job, Run, TrainingStatus, WorkerHeartbeat


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


# The rows a job trains, whose status follows the job's: a classifier run (train_classifier) and a CycleGAN
# (train_cyclegan). While the job is queued or running they are "running" (a job re-queued after its worker died
# resumes the same row); when it fails or is cancelled, they end so too (curation.jobs.services.job_outputs_end).
JOB_OUTPUTS = (("run", Run), ("generator", GanModel))

# The status a job's run or generator has while the job has each status.
OUTPUT_STATUS_OF_JOB = {
    Job.Status.QUEUED: TrainingStatus.RUNNING,  # re-queued after its worker died: the next attempt resumes it
    Job.Status.RUNNING: TrainingStatus.RUNNING,
    Job.Status.SUCCEEDED: TrainingStatus.SUCCEEDED,
    Job.Status.FAILED: TrainingStatus.FAILED,
    Job.Status.CANCELLED: TrainingStatus.CANCELLED,
}


def job_outputs_disagreeing():
    """Runs and generators whose status disagrees with their job's (OUTPUT_STATUS_OF_JOB), and running ones that
    have no job (it was deleted): nothing will ever end them. Returns (rows checked, [one sentence per row])."""
    checked, found = 0, []
    for noun, model in JOB_OUTPUTS:
        for row in model.objects.select_related("job").only("pk", "status", "job__kind", "job__status").order_by("pk"):
            checked += 1
            job = row.job
            if job is None:
                if row.status == TrainingStatus.RUNNING:
                    found.append(f"{noun} {row.pk}: running, but it has no job")
            elif row.status != OUTPUT_STATUS_OF_JOB.get(job.status):
                found.append(f"{noun} {row.pk}: {row.status}, but its job {job.pk} ({job.kind}) {job.status}")
    return checked, found
