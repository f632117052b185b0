"""Run one attempt of a job: claim it, heartbeat while the handler runs, record the outcome exactly once.

Every write an attempt makes to its Job row is conditional on (status=running, attempts=<this attempt>), so an
attempt that the reaper has given up on (its worker looked dead) can no longer change the row, and a job's result
is written once however many times its message is delivered.
"""
import logging
import os
import socket
import threading
import time
import traceback

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from curation.jobs.errors import JobCancelled, JobLost
from curation.jobs.registry import get_kind
from curation.models import Job

log = logging.getLogger(__name__)


def worker_label(prefix=""):
    return f"{prefix}{socket.gethostname()}:{os.getpid()}"


class JobContext:
    """What a job handler sees: its params, its saved state, and progress / cancel / checkpoint calls."""

    PROGRESS_EVERY_SECONDS = 1.0

    def __init__(self, *, job_id, attempt, params, state, on_progress=None):
        self.job_id = job_id
        self.attempt = attempt
        self.params = params
        self.state = dict(state or {})
        self.cancel_event = threading.Event()
        self.lost_event = threading.Event()
        self._last_progress = 0.0
        # Called with (fraction, message) on every progress call: a parent job that runs this one in its own
        # process passes it on as its own progress.
        self.on_progress = on_progress

    def _mine(self):
        return Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING, attempts=self.attempt)

    def check(self):
        """Stop here if the job was cancelled or taken away from this attempt."""
        if self.lost_event.is_set():
            raise JobLost(f"job {self.job_id} attempt {self.attempt} no longer owns the job")
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def progress(self, fraction, message="", *, force=False):
        """Record progress (0-1) and a message; written at most about once a second unless forced."""
        now = time.monotonic()
        if force or now - self._last_progress >= self.PROGRESS_EVERY_SECONDS:
            self._last_progress = now
            fraction = min(max(float(fraction), 0.0), 1.0)
            if not self._mine().update(progress=fraction, message=message[:500], heartbeat_at=timezone.now()):
                self.lost_event.set()
        if self.on_progress is not None:
            self.on_progress(fraction, message)
        self.check()

    def save_state(self, state):
        """Store what the job has durably done. Call it inside the transaction that did the work, so both commit
        or neither does; raises JobLost (rolling that transaction back) if this attempt no longer owns the job."""
        if not self._mine().update(state=state):
            self.lost_event.set()
            raise JobLost(f"job {self.job_id} attempt {self.attempt} no longer owns the job")
        self.state = dict(state)


def _heartbeat(ctx, stop):
    try:
        while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
            try:
                if not ctx._mine().update(heartbeat_at=timezone.now()):
                    ctx.lost_event.set()
                    return
                if Job.objects.filter(pk=ctx.job_id, cancel_requested=True).exists():
                    ctx.cancel_event.set()
            except Exception:  # a database hiccup must not kill the heartbeat; the next beat retries
                log.exception("heartbeat of job %s failed", ctx.job_id)
    finally:
        connection.close()


def job_claim(*, job_id, worker):
    """Take a queued job for a new attempt. Returns the Job, or None if it is not ours to run (already running
    elsewhere, finished, unknown, or cancelled while queued: then it is marked cancelled here)."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED, cancel_requested=False).update(
        status=Job.Status.RUNNING,
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        started_at=Coalesce("started_at", now),
        worker=worker[:200],
        message="started",
        error="",
    )
    if not claimed:
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED, cancel_requested=True).update(
            status=Job.Status.CANCELLED, message="cancelled before it started", finished_at=now
        )
        return None
    return Job.objects.get(pk=job_id)


def _finish(job, **fields):
    fields["finished_at"] = timezone.now()
    done = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).update(**fields)
    if not done:
        log.warning("job %s attempt %s finished but no longer owned the job; outcome dropped", job.pk, job.attempts)
    return bool(done)


def job_run(*, job_id, worker=None, on_progress=None):
    """Claim and run one attempt of a job in this process. Returns the final status, or None if not claimed (or if
    the attempt lost the job to another). on_progress(fraction, message), if given, hears the job's progress."""
    job = job_claim(job_id=job_id, worker=worker or worker_label())
    if job is None:
        return None
    kind = get_kind(job.kind)
    ctx = JobContext(job_id=job.pk, attempt=job.attempts, params=job.params, state=job.state, on_progress=on_progress)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ctx, stop), name=f"job-{job.pk}-heartbeat", daemon=True)
    beat.start()
    log.info("job %s (%s) attempt %s started", job.pk, job.kind, job.attempts)
    try:
        result = kind.handler(ctx)
    except JobCancelled:
        _finish(job, status=Job.Status.CANCELLED, message="cancelled")
        status = Job.Status.CANCELLED
    except JobLost as exc:
        log.warning("%s", exc)
        status = None
    except Exception as exc:
        _finish(
            job,
            status=Job.Status.FAILED,
            message=f"failed: {exc}"[:500],
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
        )
        log.exception("job %s failed", job.pk)
        status = Job.Status.FAILED
    else:
        _finish(job, status=Job.Status.SUCCEEDED, result=result, progress=1.0, message="done")
        status = Job.Status.SUCCEEDED
    finally:
        stop.set()
        beat.join()
    log.info("job %s attempt %s ended: %s", job.pk, job.attempts, status)
    return status

