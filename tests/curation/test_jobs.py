"""Jobs on real Celery worker processes: the Job row is the truth, a killed worker loses nothing."""
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from curation.jobs.errors import JobLost, JobParamsError
from curation.jobs.runner import JobContext, job_claim
from curation.jobs.services import job_cancel, job_enqueue, jobs_reap
from curation.management.jobcommand import JobCommand
from curation.models import Image, Job
from tests.conftest import wait_for
from tests.factories import JobFactory
from tests.images import write_imagefolder

pytestmark = pytest.mark.worker


def _import_params(path, name):
    return {"path": str(path), "format": "imagefolder", "name": name}


def test_command_waits_for_worker_and_prints_report(start_worker, tmp_path):
    n = write_imagefolder(tmp_path / "src", {"happy": 12, "sad": 12})
    start_worker()
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dataset", str(tmp_path / "src"), "--format", "imagefolder", "--name", "small",
                 stdout=out, stderr=err)
    job = Job.objects.get()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 1
    assert job.worker and not job.worker.startswith("inline:")  # it ran in the worker process, not here
    assert Image.objects.filter(dataset__name="small").count() == n
    assert f"added:              {n}" in out.getvalue()
    assert "100.0% succeeded" in err.getvalue()


def test_worker_killed_mid_job_reruns_it_exactly_once(start_worker, tmp_path):
    total = write_imagefolder(tmp_path / "src", {"happy": 1200, "sad": 1200}, size=48)
    first = start_worker()
    job = job_enqueue(kind="import_dataset", params=_import_params(tmp_path / "src", "big"))
    # Kill once some batches are committed but long before the end.
    wait_for(lambda: Image.objects.filter(dataset__name="big").count() >= 128, timeout=120, what="first batches")
    first.kill()
    job.refresh_from_db()
    done_before_kill = Image.objects.filter(dataset__name="big").count()
    assert job.status == Job.Status.RUNNING and done_before_kill < total, "the job ended before the kill"

    second = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, interval=0.3, what="the re-run")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.attempts == 2
    assert "re-queued" not in job.message and job.message == "done"
    # Every file imported once: the re-run resumed after the committed batches and added each image once.
    assert Image.objects.filter(dataset__name="big").count() == total
    assert job.result["added"] == total and job.result["already_present"] == 0 and job.result["bad_count"] == 0
    # The outcome was written by the second attempt only; the killed one never finished.
    assert "attempt 2 ended: succeeded" in second.log()
    assert "ended:" not in first.log()


def test_cancel_stops_a_running_job_and_the_worker_stays_healthy(start_worker, tmp_path):
    write_imagefolder(tmp_path / "src", {"happy": 1500, "sad": 1500}, size=48)
    write_imagefolder(tmp_path / "after", {"happy": 3})
    start_worker()
    job = job_enqueue(kind="import_dataset", params=_import_params(tmp_path / "src", "long"))
    wait_for(lambda: Image.objects.filter(dataset__name="long").count() >= 64, timeout=120, what="the job to start")
    job_cancel(job_id=job.pk)
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=60, interval=0.2, what="cancellation")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert Image.objects.filter(dataset__name="long").count() < 3000
    # The same worker takes the next job.
    nxt = job_enqueue(kind="import_dataset", params=_import_params(tmp_path / "after", "after"))
    wait_for(lambda: Job.objects.get(pk=nxt.pk).is_finished, timeout=60, interval=0.2, what="the next job")
    assert Job.objects.get(pk=nxt.pk).status == Job.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_command_without_worker_says_so_instead_of_hanging(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "src", {"happy": 2})
    monkeypatch.setattr(JobCommand, "worker_grace_seconds", 1.0)
    with pytest.raises(CommandError, match="no worker is consuming queue 'cpu'.*make worker.*--inline") as exc:
        call_command("import_dataset", str(tmp_path / "src"), "--format", "imagefolder", "--name", "x",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert exc.value.returncode == 3
    assert Job.objects.get().status == Job.Status.QUEUED  # still there for a worker to take


@pytest.mark.django_db
def test_bad_params_are_refused_before_anything_is_queued(tmp_path):
    with pytest.raises(JobParamsError, match="FER_IMPORT_ROOTS"):
        job_enqueue(kind="import_dataset", params=_import_params(tmp_path / "missing", "x"))
    with pytest.raises(JobParamsError, match="unknown job kind 'nope'"):
        job_enqueue(kind="nope", params={})
    with pytest.raises(JobParamsError, match="dataset name"):
        job_enqueue(kind="import_dataset", params=_import_params(tmp_path, "../evil"))
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_reaper_requeues_a_silent_job_then_gives_up_after_max_attempts(settings):
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 5)
    job = JobFactory(kind="import_dataset", status=Job.Status.RUNNING, attempts=1, max_attempts=2,
                     heartbeat_at=long_ago, worker="gone:1")
    fresh = JobFactory(kind="import_dataset", status=Job.Status.RUNNING, attempts=1, max_attempts=2,
                       heartbeat_at=timezone.now(), worker="alive:2")
    assert jobs_reap() == ([job.pk], [])
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and "gone:1 stopped responding" in job.message
    assert Job.objects.get(pk=fresh.pk).status == Job.Status.RUNNING

    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, attempts=2, heartbeat_at=long_ago)
    assert jobs_reap() == ([], [job.pk])
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "gave up after 2 of 2 attempts" in job.error


@pytest.mark.django_db
def test_an_attempt_the_reaper_gave_away_can_no_longer_write():
    job = JobFactory(kind="import_dataset", params={}, status=Job.Status.QUEUED)
    claimed = job_claim(job_id=job.pk, worker="w:1")
    stale_ctx = JobContext(job_id=job.pk, attempt=claimed.attempts, params={}, state={})
    # The reaper re-queues it and a second attempt claims it.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)
    assert job_claim(job_id=job.pk, worker="w:2").attempts == 2
    with pytest.raises(JobLost):
        stale_ctx.save_state({"done": 999})
    assert Job.objects.get(pk=job.pk).state == {}


@pytest.mark.django_db
def test_progress_never_goes_backwards_within_an_attempt():
    """The bar a job command draws reads Job.progress: training that reached 100 % and then reported the
    evaluation at 99 % drew a bar going backwards (issue 35)."""
    job = JobFactory(kind="train_classifier", status=Job.Status.RUNNING, attempts=1)
    seen = []
    ctx = JobContext(job_id=job.pk, attempt=1, params={}, state={}, on_progress=lambda f, m: seen.append(f))
    for fraction in (0.5, 1.0, 0.99, 0.2):
        ctx.progress(fraction, "step", force=True)
        job.refresh_from_db()
        assert job.progress == max(seen) == seen[-1]
    assert seen == [0.5, 1.0, 1.0, 1.0]
