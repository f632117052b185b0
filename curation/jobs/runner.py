"""Run one attempt of a job: claim it, heartbeat while the handler runs, record the outcome exactly once.

Every write an attempt makes to its Job row is conditional on (status=running, attempts=<this attempt>), so an
attempt that the reaper has given up on (its worker looked dead) can no longer change the row, and a job's result
is written once however many times its message is delivered.

A handler may split its work into child jobs (Job.parent) through its JobContext: enqueue them, run them to the end
(taking queued ones in this process, waiting for those other workers run), cancel them. Their handlers know nothing
of this module, so the registry of handlers never imports the runner back.

This is the one module that imports handlers: the registry names each kind's handler by dotted path, and job_run
imports it when a job of the kind runs (a handler may import torch at its top; web processes never run a job).
"""
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from curation.jobs.errors import JobCancelled, JobLost, JobParamsError
from curation.jobs.registry import get_kind
from curation.jobs.services import (
    job_children_cancel,
    job_enqueue,
    job_outputs_end,
    job_retry,
    jobs_reap,
)
from curation.models import Job, TrainingStatus
from training.malloc import fix_mmap_threshold

log = logging.getLogger(__name__)


def worker_label(prefix=""):
    return f"{prefix}{socket.gethostname()}:{os.getpid()}"


class JobContext:
    """What a job handler sees: its params, its saved state, and progress / cancel / checkpoint calls."""

    PROGRESS_EVERY_SECONDS = 1.0
    WAIT_SECONDS = 0.5  # between looks at children that other workers run

    def __init__(self, *, job_id, attempt, params, state, on_progress=None):
        self.job_id = job_id
        self.attempt = attempt
        self.params = params
        self.state = dict(state or {})
        self.cancel_event = threading.Event()
        self.lost_event = threading.Event()
        self._last_progress = 0.0
        self._highest = 0.0  # progress never goes backwards within an attempt (a bar from 100 % to 99 % misleads)
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
        """Record progress (0-1) and a message; written at most about once a second unless forced. A fraction below
        one recorded before in this attempt is raised to it: progress never goes backwards."""
        now = time.monotonic()
        fraction = self._highest = max(min(max(float(fraction), 0.0), 1.0), self._highest)
        if force or now - self._last_progress >= self.PROGRESS_EVERY_SECONDS:
            self._last_progress = now
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

    # --- child jobs: parts of this job, each a Job row of its own that any worker may run ----------------------

    def child_enqueue(self, *, kind, params):
        """Enqueue a job of `kind` as a part of this one. Call it inside the transaction that records the child in
        this job's state (save_state), so that a re-run of this job finds its children instead of enqueueing them
        twice."""
        parent = Job.objects.only("pk", "kind").get(pk=self.job_id)
        return job_enqueue(kind=kind, params=params, parent=parent)

    def children_cancel(self):
        """Cancel this job's children that have not finished."""
        job_children_cancel(job_id=self.job_id)

    def children_run(self, children, *, share=1.0, noun="child", unit="units"):
        """Run this job's `children` ([{"id": job id, "n": its size in `unit`s, "name": what it does}]) to the end: take
        queued ones here, wait for those running elsewhere. Progress goes from 0 to `share` by units done. Returns
        the finished children's results, in order.

        This job never just waits for a worker: with one worker process of concurrency 1 nobody else would take the
        children. A child that failed is queued again while it has attempts left; one that failed its last attempt
        raises ChildFailed, naming it. Whatever stops this job (cancelled, failed) cancels the children left."""
        try:
            return self._children_run(children, share, noun, unit)
        except JobLost:
            raise  # another attempt of this job owns the children now
        except BaseException:
            self.children_cancel()  # nobody should spend a GPU on the rest
            raise

    def _children_run(self, children, share, noun, unit):
        if not children:
            return []
        size = {c["id"]: c["n"] for c in children}
        name = {c["id"]: c["name"] for c in children}
        total = sum(size.values()) or 1
        here = worker_label()
        last_reap = time.monotonic()
        while True:
            self.check()
            jobs = {j.pk: j for j in Job.objects.filter(parent_id=self.job_id, pk__in=list(size)).only(
                "pk", "status", "progress", "attempts", "max_attempts", "error", "message", "result")}
            missing = set(size) - set(jobs)
            if missing:
                raise ChildFailed(f"{noun} jobs {sorted(missing)} of job {self.job_id} were deleted")
            for pk, job in jobs.items():
                if job.status == Job.Status.FAILED and not job_retry(job_id=pk):
                    reason = (job.error.split("\n\n")[0] if job.error else job.message) or "no reason recorded"
                    raise ChildFailed(f"{noun} job {pk} ({name[pk]}, {size[pk]} {unit}) failed after {job.attempts} "
                                      f"attempt(s): {reason}")
                if job.status == Job.Status.CANCELLED:
                    if Job.objects.filter(pk=self.job_id, cancel_requested=True).exists():
                        raise JobCancelled(f"job {self.job_id} was cancelled")
                    raise ChildFailed(f"{noun} job {pk} ({name[pk]}) was cancelled, so job {self.job_id}'s work is "
                                      f"incomplete; run it again to do what is missing")
            done = sum(size[pk] * (1.0 if j.status == Job.Status.SUCCEEDED else j.progress) for pk, j in jobs.items())
            finished = [pk for pk in size if jobs[pk].status == Job.Status.SUCCEEDED]
            if len(finished) == len(jobs):
                return [jobs[pk].result for pk in finished]
            queued = [pk for pk in size if jobs[pk].status == Job.Status.QUEUED]
            if queued:
                pk = queued[0]
                n_done = len(finished)

                def passed_on(fraction, message, pk=pk, base=done - size[pk] * jobs[pk].progress):
                    try:
                        self.progress(share * (base + size[pk] * fraction) / total,
                                      f"{noun} {n_done + 1} of {len(jobs)} ({message})")
                    except (JobCancelled, JobLost):
                        pass  # this job's own loop stops after this child; its cancel reaches the child too

                # Another worker may take it first; job_run then returns None and the loop looks again.
                job_run(job_id=pk, worker=here, on_progress=passed_on)
                continue
            self.progress(share * done / total, f"{len(finished)} of {len(jobs)} {noun}s done, the rest running on "
                                                f"other workers")
            if time.monotonic() - last_reap > settings.JOB_REAP_INTERVAL_SECONDS:
                # A child whose worker died is re-queued even where no worker runs a reaper (an --inline parent).
                jobs_reap()
                last_reap = time.monotonic()
            time.sleep(self.WAIT_SECONDS)


class ChildFailed(RuntimeError):
    """A child job failed its last attempt, was cancelled on its own, or was deleted: its parent cannot finish."""


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
        with transaction.atomic():
            if Job.objects.filter(pk=job_id, status=Job.Status.QUEUED, cancel_requested=True).update(
                status=Job.Status.CANCELLED, message="cancelled before it started", finished_at=now
            ):
                job_outputs_end(job_ids=[job_id], status=TrainingStatus.CANCELLED)
        return None
    return Job.objects.get(pk=job_id)


# A failed or cancelled job's run or generator ends so too, in the transaction that records the outcome.
_OUTPUT_STATUS = {Job.Status.FAILED: TrainingStatus.FAILED, Job.Status.CANCELLED: TrainingStatus.CANCELLED}


def _finish(job, **fields):
    fields["finished_at"] = timezone.now()
    with transaction.atomic():
        done = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).update(**fields)
        if done and fields["status"] in _OUTPUT_STATUS:
            failed = fields["status"] == Job.Status.FAILED
            job_outputs_end(job_ids=[job.pk], status=_OUTPUT_STATUS[fields["status"]],
                            error=fields["message"].removeprefix("failed: ") if failed else "")
    if not done:
        log.warning("job %s attempt %s finished but no longer owned the job; outcome dropped", job.pk, job.attempts)
    return bool(done)


def job_run(*, job_id, worker=None, on_progress=None):
    """Claim and run one attempt of a job in this process. Returns the final status, or None if not claimed (or if
    the attempt lost the job to another). on_progress(fraction, message), if given, hears the job's progress."""
    job = job_claim(job_id=job_id, worker=worker or worker_label())
    if job is None:
        return None
    fix_mmap_threshold()  # training, generation and scoring: the heap must not grow with the batches read
    kind = get_kind(job.kind)
    ctx = JobContext(job_id=job.pk, attempt=job.attempts, params=job.params, state=job.state, on_progress=on_progress)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ctx, stop), name=f"job-{job.pk}-heartbeat", daemon=True)
    beat.start()
    log.info("job %s (%s) attempt %s started", job.pk, job.kind, job.attempts)
    try:
        # Inside the try: a handler that cannot be imported fails its job, naming why, and the worker goes on.
        result = import_string(kind.handler)(ctx)
    except JobCancelled:
        _finish(job, status=Job.Status.CANCELLED, message="cancelled")
        status = Job.Status.CANCELLED
    except JobLost as exc:
        log.warning("%s", exc)
        status = None
    except Exception as exc:
        # Users see one line (the jobs page, the API); the traceback goes to the worker's log only.
        text = " ".join(str(exc).split()) or "no message"
        error = f"{type(exc).__name__}: {text}"
        _finish(
            job,
            status=Job.Status.FAILED,
            message=f"failed: {text if isinstance(exc, JobParamsError) else error}"[:500],
            error=error[:2000],
        )
        log.exception("job %s failed", job.pk)
        status = Job.Status.FAILED
    else:
        # A handler's result may carry a "warning" (it finished, but not as asked): that is the job's message.
        warning = result.get("warning") if isinstance(result, dict) else None
        _finish(job, status=Job.Status.SUCCEEDED, result=result, progress=1.0, message=(warning or "done")[:500])
        status = Job.Status.SUCCEEDED
    finally:
        stop.set()
        beat.join()
    log.info("job %s attempt %s ended: %s", job.pk, job.attempts, status)
    return status

