"""Run one product job for the benchmark: on a worker (enqueue, then watch its row), or in this process (--inline:
the same Job row, claimed and run by curation.jobs.runner.job_run, as `manage.py <command> --inline` does)."""
import time

from curation.jobs.errors import JobParamsError
from curation.jobs.runner import job_run, worker_label
from curation.jobs.selectors import workers_alive
from curation.jobs.services import job_enqueue
from curation.models import Job


class StageFailed(RuntimeError):
    """A stage's job did not succeed (or could not start); the message names the stage, the job and why."""


class NoWorker(StageFailed):
    """Nothing consumes the job's queue."""


def check_workers(queues=("cpu", "gpu")):
    """Raise NoWorker unless a live worker consumes every queue the benchmark's jobs go to."""
    missing = [q for q in queues if not workers_alive(queue=q)]
    if missing:
        raise NoWorker(f"no worker is consuming queue(s) {', '.join(missing)}: start one with `make worker` "
                       f"(or `.venv/bin/celery -A fer_site worker -Q cpu,gpu`), or run the benchmark with --inline")


def run_stage(kind, params, *, inline, say, poll=0.5, report_every=15.0):
    """Enqueue a `kind` job with `params` and return its Job once it has succeeded; raise StageFailed otherwise."""
    try:
        job = job_enqueue(kind=kind, params=params, send=not inline)
    except JobParamsError as exc:
        raise StageFailed(f"{kind} cannot start: {exc}") from None
    if inline:
        job_run(job_id=job.pk, worker=worker_label("inline:"))
        job.refresh_from_db()
    else:
        job = _watch(job, say, poll, report_every)
    if job.status != Job.Status.SUCCEEDED:
        detail = job.error.split("\n\n")[0] if job.error else job.message
        raise StageFailed(f"{kind} job {job.pk} {job.status}: {detail}")
    return job


def _watch(job, say, poll, report_every):
    last = 0.0
    while True:
        job.refresh_from_db()
        if job.is_finished:
            return job
        if time.monotonic() - last >= report_every:
            last = time.monotonic()
            attempt = f" (attempt {job.attempts})" if job.attempts > 1 else ""
            say(f"  job {job.pk} {job.kind}: {job.progress:.0%} {job.status}{attempt} {job.message}")
            if job.status == Job.Status.QUEUED and not workers_alive(queue=job.queue):
                say(f"  job {job.pk} waits for a worker on queue '{job.queue}'")
        time.sleep(poll)
