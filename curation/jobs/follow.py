"""Follow a job to its end once job_enqueue has queued it: the one way the job commands
(curation/management/jobcommand.py) and the cleaning benchmark (curation/cleaning_bench/stages.py) wait for a job,
run it in this process (--inline) and word how it ended. The Job row is the truth, so following a job is re-reading
its row; each caller draws progress and decides when to stop watching in its `on_poll`. The demo does not wait on
one job: it drives a pipeline of stages (`advance` in curation/management/commands/demo.py) while it watches its web
and worker processes and Ctrl-C, so it polls every stage's row in its own loop."""
import time

from curation.jobs.runner import job_run, worker_label
from curation.models import Job


def job_run_here(job):
    """Run a job enqueued with send=False (job_enqueue) in this process, as --inline does: the same row, claimed and
    run by the same code a worker runs. Returns it finished."""
    job_run(job_id=job.pk, worker=worker_label("inline:"))
    job.refresh_from_db()
    return job


def job_follow(job, *, on_poll, poll=0.5):
    """Re-read the job's row every `poll` seconds until it has finished, and return it. on_poll(job, waited) is
    called after each read of an unfinished job, `waited` the seconds since following began: it shows progress, and
    raises to stop watching (the job goes on)."""
    started = time.monotonic()
    while True:
        job.refresh_from_db()
        if job.is_finished:
            return job
        on_poll(job, time.monotonic() - started)
        time.sleep(poll)


def job_failure(job):
    """None for a job that succeeded; else "job N <status>: <the first paragraph of its error, or its message>"."""
    if job.status == Job.Status.SUCCEEDED:
        return None
    detail = job.error.split("\n\n")[0] if job.error else job.message
    return f"job {job.pk} {job.status}: {detail}"
