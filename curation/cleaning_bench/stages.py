"""Run one product job for the benchmark: on a worker (enqueue, then watch its row), or in this process (--inline:
the same Job row, claimed and run by curation.jobs.runner.job_run, as `manage.py <command> --inline` does)."""
from curation.jobs.errors import JobParamsError
from curation.jobs.follow import job_failure, job_follow, job_run_here
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
        job = job_run_here(job)
    else:
        last = None

        def on_poll(job, waited):
            nonlocal last
            if last is not None and waited - last < report_every:
                return
            last = waited
            attempt = f" (attempt {job.attempts})" if job.attempts > 1 else ""
            say(f"  job {job.pk} {job.kind}: {job.progress:.0%} {job.status}{attempt} {job.message}")
            if job.status == Job.Status.QUEUED and not workers_alive(queue=job.queue):
                say(f"  job {job.pk} waits for a worker on queue '{job.queue}'")

        job = job_follow(job, on_poll=on_poll, poll=poll)
    failure = job_failure(job)
    if failure:
        raise StageFailed(f"{kind} {failure}")
    return job
