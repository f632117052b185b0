"""Reads for the jobs page: top-level jobs with their child-job counts, one job's row, how long a job ran."""
from django.core.paginator import Paginator
from django.utils import timezone

from curation.jobs.selectors import job_get
from curation.models import Job


JOBS_PER_PAGE = 25


def jobs_page(*, page=1, per_page=JOBS_PER_PAGE):
    """A page of top-level jobs (no parent), newest first, each with `child_counts` ({"total", "done", "failed"})
    when it has children. Three queries whatever the page size (count, page, children)."""
    qs = Job.objects.filter(parent__isnull=True).select_related("created_by").order_by("-id")
    page_obj = Paginator(qs, per_page).get_page(page)
    jobs = list(page_obj.object_list)
    counts = job_children_counts(job_ids=[j.pk for j in jobs])
    for job in jobs:
        job.child_counts = counts.get(job.pk)
    page_obj.object_list = jobs
    return page_obj


def job_children_counts(*, job_ids):
    """{parent job id: {"total", "done", "failed"}} of the children of `job_ids` (Job.parent)."""
    if not job_ids:
        return {}
    rows = Job.objects.filter(parent_id__in=list(job_ids)).values_list("parent_id", "status")
    out = {}
    for parent, status in rows:
        c = out.setdefault(parent, {"total": 0, "done": 0, "failed": 0})
        c["total"] += 1
        c["done"] += status == Job.Status.SUCCEEDED
        c["failed"] += status in (Job.Status.FAILED, Job.Status.CANCELLED)
    return out


def job_duration(job, *, now=None):
    """Seconds the job has run (so far, if it still runs), or None before it starts."""
    if job.started_at is None:
        return None
    end = job.finished_at or (now or timezone.now())
    return max((end - job.started_at).total_seconds(), 0.0)


def job_for_row(*, job_id):
    """The job with `child_counts` as jobs_page gives it. Raises JobNotFound."""
    job = job_get(job_id=job_id)
    job.child_counts = job_children_counts(job_ids=[job.pk]).get(job.pk)
    return job
