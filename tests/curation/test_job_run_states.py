"""Job and run states agree (issue 32, item 5): when a job fails or is cancelled - by its own error, by the reaper
giving up on a silent worker, or by a user's cancel - its classifier run or CycleGAN ends failed or cancelled in the
same transaction; `manage.py verify_jobs` lists any row that disagrees with its job and exits non-zero."""
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from curation.jobs.runner import job_claim, job_run
from curation.jobs.services import job_cancel, job_enqueue, job_retry, jobs_reap
from curation.models import GanModel, Job, Run
from tests.conftest import wait_for
from tests.factories import DatasetFactory, GanModelFactory, JobFactory, RunFactory

RUNNING, FAILED, CANCELLED = Run.Status.RUNNING, Run.Status.FAILED, Run.Status.CANCELLED


def _stale_job(settings, **fields):
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 5)
    return JobFactory(kind="train_classifier", status=Job.Status.RUNNING, heartbeat_at=long_ago, worker="gone:1",
                      **fields)


def _outputs(job):
    ds = DatasetFactory()
    return RunFactory(dataset=ds, job=job, status=RUNNING), GanModelFactory(dataset=ds, job=job, status=RUNNING)


def _status(row):
    row.refresh_from_db()
    return row.status


@pytest.mark.django_db
def test_the_reaper_giving_up_fails_the_run_and_the_generator_with_the_job(settings):
    job = _stale_job(settings, attempts=3, max_attempts=3)
    run, gan = _outputs(job)
    other_run, _ = _outputs(_stale_job(settings, attempts=1, max_attempts=3))  # re-queued: it will resume
    assert jobs_reap()[1] == [job.pk]
    assert _status(job) == Job.Status.FAILED
    assert (_status(run), _status(gan)) == (FAILED, FAILED)
    assert "gave up after 3 of 3 attempts" in run.error and "gave up" in gan.error
    assert run.finished_at is not None
    assert _status(other_run) == RUNNING


@pytest.mark.django_db
def test_the_reaper_cancelling_a_silent_job_cancels_its_run(settings):
    job = _stale_job(settings, attempts=1, max_attempts=3, cancel_requested=True)
    run, gan = _outputs(job)
    jobs_reap()
    assert _status(job) == Job.Status.CANCELLED
    assert (_status(run), _status(gan)) == (CANCELLED, CANCELLED)


@pytest.mark.django_db
def test_a_user_cancelling_a_requeued_job_cancels_its_run():
    """A job the reaper re-queued after its worker died keeps its run "running" (the next attempt resumes it);
    cancelled while it waits, the job never runs again, so its run ends cancelled with it."""
    job = JobFactory(kind="train_classifier", status=Job.Status.QUEUED, attempts=1)
    run, gan = _outputs(job)
    job_cancel(job_id=job.pk)
    assert _status(job) == Job.Status.CANCELLED
    assert (_status(run), _status(gan)) == (CANCELLED, CANCELLED)


@pytest.mark.django_db
def test_a_cancel_seen_at_claim_time_cancels_the_run():
    job = JobFactory(kind="train_classifier", status=Job.Status.QUEUED, attempts=1, cancel_requested=True)
    run, _ = _outputs(job)
    assert job_claim(job_id=job.pk, worker="w:1") is None
    assert (_status(job), _status(run)) == (Job.Status.CANCELLED, CANCELLED)


@pytest.mark.django_db
def test_a_job_failing_on_its_own_error_fails_its_run():
    """The resumed attempt of a training job finds a run whose stored config it cannot read: the handler raises
    before its own try block, and the runner, which records the failure, ends the run with it."""
    ds = DatasetFactory(name="own-error")
    job = JobFactory(kind="train_classifier", params={"dataset": ds.name}, status=Job.Status.QUEUED)
    run = RunFactory(dataset=ds, job=job, status=RUNNING, config={"no_such_setting": 1})
    Job.objects.filter(pk=job.pk).update(state={"run_id": run.pk})
    assert job_run(job_id=job.pk, worker="w:1") == Job.Status.FAILED
    assert _status(job) == Job.Status.FAILED and _status(run) == FAILED and run.error and run.error in job.message


@pytest.mark.django_db
def test_a_running_job_cancelled_by_a_user_keeps_its_run_running_until_it_stops():
    """A cancel asks a running job to stop at its next check; until then its run is still training."""
    job = JobFactory(kind="train_classifier", status=Job.Status.RUNNING, attempts=1, heartbeat_at=timezone.now())
    run, _ = _outputs(job)
    job_cancel(job_id=job.pk)
    assert (_status(job), _status(run)) == (Job.Status.RUNNING, RUNNING)


# --- the check ----------------------------------------------------------------------------------------------------

def _verify():
    out = io.StringIO()
    try:
        call_command("verify_jobs", stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


@pytest.mark.django_db
def test_verify_jobs_lists_rows_that_disagree_with_their_job_and_exits_non_zero():
    ds = DatasetFactory()
    failed = JobFactory(kind="train_classifier", status=Job.Status.FAILED)
    cancelled = JobFactory(kind="train_cyclegan", status=Job.Status.CANCELLED)
    done = JobFactory(kind="train_classifier", status=Job.Status.SUCCEEDED)
    running = JobFactory(kind="train_classifier", status=Job.Status.RUNNING)
    stuck = RunFactory(dataset=ds, job=failed, status=RUNNING)
    stuck_gan = GanModelFactory(dataset=ds, job=cancelled, status=RUNNING)
    RunFactory(dataset=ds, job=done, status=Run.Status.SUCCEEDED)
    RunFactory(dataset=ds, job=running, status=RUNNING)
    orphan = RunFactory(dataset=ds, job=None, status=RUNNING)
    out, error = _verify()
    assert error == "3 runs or generators disagree with their job"
    assert f"run {stuck.pk}: running, but its job {failed.pk} (train_classifier) failed" in out
    assert f"generator {stuck_gan.pk}: running, but its job {cancelled.pk} (train_cyclegan) cancelled" in out
    assert f"run {orphan.pk}: running, but it has no job" in out
    assert out.count("\n") == 4  # three rows and the summary


@pytest.mark.django_db
def test_verify_jobs_passes_when_every_row_agrees(settings):
    job = _stale_job(settings, attempts=3, max_attempts=3)
    _outputs(job)
    assert _verify() == ("2 runs and generators checked: 0 disagree with their job\n", None)
    jobs_reap()
    assert _status(job) == Job.Status.FAILED
    assert _verify() == ("2 runs and generators checked: 0 disagree with their job\n", None)


# --- with a real worker, killed ----------------------------------------------------------------------------------

@pytest.mark.worker
@pytest.mark.slow
def test_a_worker_killed_on_the_last_attempt_leaves_the_run_failed(start_worker, tmp_path, settings):
    """A real Celery worker SIGKILLed while it trains, on the job's last attempt: another worker's reaper gives
    up on the job, and the run ends failed with it (it stayed "running" for ever before)."""
    from tests.curation.conftest import square_dataset

    (tmp_path / "src").mkdir()
    name = square_dataset(tmp_path / "src", n=160)
    settings.JOB_MAX_ATTEMPTS = 1
    first = start_worker()
    job = job_enqueue(kind="train_classifier", params={"dataset": name, "arch": "small_cnn", "size": 32,
                                                               "epochs": 200, "patience": 200})
    run = wait_for(lambda: Run.objects.filter(job=job).first(), timeout=120, interval=0.2, what="the run")
    first.kill()
    assert _status(job) == Job.Status.RUNNING and _status(run) == RUNNING
    start_worker()  # its reaper finds the silent job on its last attempt
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120, interval=0.2, what="the reaper")
    assert _status(job) == Job.Status.FAILED and "gave up after 1 attempts" in job.message
    assert _status(run) == FAILED
    assert not GanModel.objects.exists()
    out, error = _verify()
    assert error is None, out


@pytest.mark.django_db
def test_a_failed_part_retried_by_its_parent_resumes_its_run():
    """A rescore job retries its failed train_classifier part, which resumes the same run: the run is running
    again with the job, not failed while it trains."""
    job = JobFactory(kind="train_classifier", status=Job.Status.FAILED, attempts=1, max_attempts=3)
    run = RunFactory(dataset=DatasetFactory(), job=job, status=FAILED, error="out of memory",
                     finished_at=timezone.now())
    assert job_retry(job_id=job.pk)
    assert (_status(job), _status(run)) == (Job.Status.QUEUED, RUNNING)
    assert run.finished_at is None and run.error == ""
    assert _verify()[1] is None
