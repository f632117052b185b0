"""Writes to the Job table: enqueue, cancel, and the reaper; and to the rows a job trains (its classifier run or
CycleGAN), which end with the job when it fails or is cancelled, in the same transaction."""
import logging
import uuid
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from curation.classifier.seeds import check_seeds
from curation.jobs.errors import JobParamsError
from curation.jobs.registry import get_kind
from curation.jobs.selectors import JOB_OUTPUTS
from curation.models import Job, TrainingStatus, WorkerHeartbeat

log = logging.getLogger(__name__)

# The Celery task that runs a job (curation.tasks.run_job). Sent by name, so that enqueueing does not import the
# task module, which imports the runner, which enqueues: the jobs layer stays free of import cycles.
RUN_JOB_TASK = "curation.run_job"


def job_outputs_end(*, job_ids, status, error=""):
    """End the runs and generators of these jobs that are still running as `status` (failed or cancelled), with
    `error` where it is failed and they recorded none. Call it in the transaction that ends the jobs, so that no
    reader ever sees a finished job with a running run. Returns how many rows it ended."""
    assert status in (TrainingStatus.FAILED, TrainingStatus.CANCELLED), status
    now, ended = timezone.now(), 0
    for _, model in JOB_OUTPUTS:
        rows = model.objects.filter(job_id__in=list(job_ids), status=TrainingStatus.RUNNING)
        if error:
            ended += rows.filter(error="").update(status=status, finished_at=now, error=error[:2000])
        ended += rows.update(status=status, finished_at=now)
    return ended


def _send(job_id, queue):
    try:
        current_app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
    except Exception:  # broker down: the job stays queued and the reaper sends it again later
        log.exception("could not send job %s to queue %s; the reaper will retry", job_id, queue)


def job_validate(*, kind, params, parent=None):
    """The parameters a job of `kind` would be created with (its validator's), creating nothing: what job_enqueue
    checks first, and the API's dry run. Raises JobParamsError naming the bad parameter."""
    job_kind = get_kind(kind)
    if job_kind.part_of is not None and (parent is None or parent.kind != job_kind.part_of):
        raise JobParamsError(f"{kind} jobs are parts of a {job_kind.part_of} job, which enqueues them; "
                             f"they are not started on their own")
    if job_kind.part_of is None and parent is not None and parent.kind not in job_kind.also_part_of:
        raise JobParamsError(f"{kind} jobs are not parts of a {parent.kind} job")
    return job_kind.validate(dict(params or {}))


def job_enqueue(*, kind, params, user=None, send=True, parent=None):
    """Validate params for `kind`, create a queued Job, and send it to its queue once the transaction commits.

    `parent` (a Job) makes the new job a part of it; only kinds that are parts of another (JobKind.part_of) take
    one, and they need one, so a part is never started by hand. Raises JobParamsError with a message naming the
    bad parameter.
    """
    job_kind = get_kind(kind)
    clean = job_validate(kind=kind, params=params, parent=parent)
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            params=clean,
            parent=parent,
            queue=job_kind.queue,
            max_attempts=settings.JOB_MAX_ATTEMPTS,
            created_by=user if user is not None and user.is_authenticated else None,
            queued_at=timezone.now(),
            message="queued",
        )
        if send:
            transaction.on_commit(lambda: _send(job.pk, job.queue))
    return job


def job_cancel(*, job_id):
    """Ask a job to stop, and with it the jobs that are parts of it (its children, e.g. the chunks of a scoring
    job). A queued job is cancelled at once; a running one stops at its next check."""
    with transaction.atomic():
        _cancel(Job.objects.filter(pk=job_id))
        _cancel(Job.objects.filter(parent_id=job_id))
    return Job.objects.get(pk=job_id)


def job_children_cancel(*, job_id):
    """Ask the children of a job to stop, not the job itself (it failed, or stops on its own)."""
    with transaction.atomic():
        _cancel(Job.objects.filter(parent_id=job_id))


def _cancel(jobs):
    """In the caller's transaction: a queued job (a new one, or one re-queued after its worker died, whose run
    waits to be resumed) is cancelled at once, and its run or generator with it; a running one is asked to stop
    (its handler ends its run when it does)."""
    now = timezone.now()
    queued = list(jobs.select_for_update().filter(status=Job.Status.QUEUED).values_list("pk", flat=True))
    Job.objects.filter(pk__in=queued, status=Job.Status.QUEUED).update(
        cancel_requested=True, status=Job.Status.CANCELLED, message="cancelled before it started", finished_at=now,
    )
    job_outputs_end(job_ids=queued, status=TrainingStatus.CANCELLED)
    jobs.filter(status=Job.Status.RUNNING).update(cancel_requested=True, message="cancelling")


def job_retry(*, job_id):
    """Queue a failed job for another attempt if it has attempts left. Returns whether it was queued again. The
    attempt resumes the job's run or generator (its state names it), which is running again from here.

    Conditional on (failed, attempts left), so of several processes retrying the same job one sends it."""
    now = timezone.now()
    with transaction.atomic():
        retried = Job.objects.filter(
            pk=job_id, status=Job.Status.FAILED, cancel_requested=False, attempts__lt=F("max_attempts")
        ).update(status=Job.Status.QUEUED, queued_at=now, finished_at=None, message="re-queued after a failure")
        if retried:
            for _, model in JOB_OUTPUTS:
                model.objects.filter(job_id=job_id, status=TrainingStatus.FAILED).update(
                    status=TrainingStatus.RUNNING, finished_at=None, error="")
            queue = Job.objects.values_list("queue", flat=True).get(pk=job_id)
            transaction.on_commit(lambda: _send(job_id, queue))
    return bool(retried)


def jobs_reap(*, now=None):
    """Re-queue running jobs whose heartbeat went stale (their worker died), until their attempts run out.

    Safe to run from several workers at once: every transition is a conditional update, and only the process
    whose update matched sends the message. Returns (requeued ids, failed ids).
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    requeued, failed = [], []
    stale = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale_before)
    for job in stale.only("pk", "attempts", "max_attempts", "cancel_requested", "worker", "queue"):
        mine = Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts, heartbeat_at__lt=stale_before
        )
        silence = f"worker {job.worker or '?'} stopped responding during attempt {job.attempts}"
        if job.cancel_requested:
            with transaction.atomic():
                if mine.update(status=Job.Status.CANCELLED, message=f"cancelled ({silence})", finished_at=now):
                    job_outputs_end(job_ids=[job.pk], status=TrainingStatus.CANCELLED)
        elif job.attempts >= job.max_attempts:
            error = f"{silence}; gave up after {job.attempts} of {job.max_attempts} attempts"
            with transaction.atomic():
                if mine.update(status=Job.Status.FAILED, message=f"gave up after {job.attempts} attempts",
                               error=error, finished_at=now):
                    job_outputs_end(job_ids=[job.pk], status=TrainingStatus.FAILED, error=error)
                    failed.append(job.pk)
        else:
            with transaction.atomic():
                if mine.update(status=Job.Status.QUEUED, queued_at=now, message=f"re-queued: {silence}"):
                    requeued.append(job.pk)
                    transaction.on_commit(lambda pk=job.pk, q=job.queue: _send(pk, q))
    resend_before = now - timedelta(seconds=settings.JOB_RESEND_QUEUED_AFTER_SECONDS)
    for job in Job.objects.filter(status=Job.Status.QUEUED, queued_at__lt=resend_before).only("pk", "queue"):
        if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED, queued_at__lt=resend_before).update(queued_at=now):
            _send(job.pk, job.queue)
    if requeued or failed:
        log.warning("reaper: re-queued jobs %s, failed jobs %s", requeued, failed)
    return requeued, failed


def worker_beat(*, name, queues, pid, started_at):
    WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"queues": ",".join(queues), "pid": pid, "started_at": started_at, "last_seen": timezone.now()}
    )


def worker_gone(*, name):
    WorkerHeartbeat.objects.filter(name=name).delete()


def seed_jobs_enqueue(params, seeds, *, user=None, send=True):
    """`train_classifier --seeds K` and the retrain form's seeds: K train_classifier jobs of the same params with
    seeds seed, seed + 1, ... (one run group, Run.group, when K > 1), all or none: a refused parameter or K queues
    nothing (JobParamsError naming it)."""
    k = check_seeds(seeds)
    base = int(params.get("seed") or 0)
    group = uuid.uuid4().hex[:12] if k > 1 else ""
    with transaction.atomic():
        return [job_enqueue(kind="train_classifier", params={**params, "seed": base + i, "group": group},
                            user=user, send=send) for i in range(k)]
