"""Chunked scoring: one score_ambiguity job whose SSIMs are computed by chunk jobs that any worker takes, on real
Celery worker processes (start_worker), with a killed worker and with a single worker of concurrency 1."""
import io
import math
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.gans.snapshots import pair_generators
from curation.jobs.errors import JobParamsError
from curation.jobs.runner import JobContext, job_claim, job_run
from curation.jobs.services import job_cancel, job_enqueue
from curation.models import Dataset, GanModel, Image, Job, TransformScore
from curation.scoring.handler import chunks_plan
from tests.conftest import wait_for
from tests.curation.conftest import square_gan_dataset
from tests.factories import JobFactory

QUIET = {"stdout": io.StringIO(), "stderr": io.StringIO()}


def _pairs(name):
    """The (image, gan, direction) keys scoring must write: every train image of the pair, once per generator
    leaving its label (excluded images left out)."""
    gan = GanModel.objects.get(dataset__name=name)
    images = Image.objects.filter(dataset__name=name, split="train").exclude(status="excluded")
    return ({(i, gan.pk, "AB") for i in images.filter(label=gan.source_label).values_list("id", flat=True)}
            | {(i, gan.pk, "BA") for i in images.filter(label=gan.target_label).values_list("id", flat=True)})


def _rows(name):
    return list(TransformScore.objects.filter(image__dataset__name=name)
                .values_list("image_id", "gan_id", "direction", "ssim", "ssim_into"))


def _summary(name):
    return {i.pk: (i.ambiguity, i.flagged, i.gan_score, i.gan_suggested_label, i.suspicion)
            for i in Image.objects.filter(dataset__name=name, split="train")}


def _chunks(parent):
    return list(parent.children.order_by("id"))


@pytest.fixture
def gan_dataset(tmp_path, transactional_db, inline_jobs, one_torch_thread):
    return square_gan_dataset(tmp_path)


@pytest.mark.worker
def test_two_workers_share_the_chunks_and_the_scores_equal_a_one_chunk_run(gan_dataset, start_worker):
    name = gan_dataset
    expected = _pairs(name)
    call_command("score_ambiguity", "--dataset", name, "--chunk-images", "100000", "--inline", **QUIET)
    one = Job.objects.get(kind="score_ambiguity")
    assert one.result["chunks"] == 2  # one per generator direction
    one_chunk = {(i, g, d): (s, b) for i, g, d, s, b in _rows(name)}
    threshold = float(np.median([s for s, _ in one_chunk.values()]))  # flags about half, so the flags can differ
    call_command("score_ambiguity", "--dataset", name, "--threshold", str(threshold), "--inline", **QUIET)
    one_summary = _summary(name)
    TransformScore.objects.all().delete()

    start_worker(), start_worker()
    job = job_enqueue(kind="score_ambiguity", params={"dataset": name, "threshold": threshold, "chunk_images": 3})
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=300, interval=0.3, what="the chunked job")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    chunks = _chunks(job)
    per_direction = {d: sum(1 for _, _, dd in expected if dd == d) for d in ("AB", "BA")}
    assert len(chunks) == sum(math.ceil(n / 3) for n in per_direction.values()) == job.result["chunks"]
    assert all(c.status == Job.Status.SUCCEEDED and c.attempts == 1 for c in chunks)
    assert len({c.worker for c in chunks}) == 2, "both worker processes ran chunks"
    # Each chunk covered its own id range; together, every expected row exactly once.
    for direction in ("AB", "BA"):
        ranges = sorted(c.params["ids"] for c in chunks if c.params["direction"] == direction)
        assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))  # disjoint
        ids = sorted(i for i, _, d in expected if d == direction)
        assert ranges[0][0] == ids[0] and ranges[-1][1] == ids[-1]
    rows = _rows(name)
    assert len(rows) == len(expected) and {(i, g, d) for i, g, d, _, _ in rows} == expected
    assert job.result["ssim_computed"] == len(expected)
    # The same scores as the one-chunk run (batch composition may move a float32 SSIM in its last digits).
    # Both SSIMs of every row (the generator leaving the label, the one into it) equal the one-chunk run's.
    assert max(abs(s - one_chunk[(i, g, d)][0]) + abs(b - one_chunk[(i, g, d)][1]) for i, g, d, s, b in rows) < 1e-4
    summary = _summary(name)
    assert {i: v[1] for i, v in summary.items()} == {i: v[1] for i, v in one_summary.items()}  # the same flags
    assert max(abs(summary[i][0] - one_summary[i][0]) for i in summary if summary[i][0] is not None) < 1e-4
    assert 0 < sum(v[1] for v in summary.values()) < len(summary)


@pytest.mark.worker
def test_a_worker_killed_mid_chunk_reruns_that_chunk_alone_and_duplicates_nothing(gan_dataset, start_worker):
    name = gan_dataset
    expected = _pairs(name)
    first = start_worker()
    job = job_enqueue(kind="score_ambiguity", params={"dataset": name, "chunk_images": 4})
    # The first chunk is the slow one (the worker imports torch and loads the generator): kill it there.
    running = wait_for(lambda: Job.objects.filter(kind="score_chunk", status=Job.Status.RUNNING).first(),
                       timeout=120, interval=0.02, what="a running chunk")
    first.kill()
    planned = _chunks(job)
    killed = [c for c in planned if c.status == Job.Status.RUNNING]
    assert [c.pk for c in killed] == [running.pk], "the chunk ended before the kill"
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING

    second = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=300, interval=0.3, what="the re-run")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2, job.error
    after = _chunks(job)
    assert [c.pk for c in after] == [c.pk for c in planned]  # the re-run parent planned no new chunks
    attempts = {c.pk: c.attempts for c in after}
    assert attempts.pop(running.pk) == 2  # the killed chunk ran again
    assert set(attempts.values()) == {1}  # every other chunk ran once
    assert all(c.status == Job.Status.SUCCEEDED for c in after)
    rows = _rows(name)
    assert len(rows) == len(expected) and {(i, g, d) for i, g, d, _, _ in rows} == expected
    assert job.result["ssim_computed"] == len(expected)
    assert "attempt 2 ended: succeeded" in second.log()


@pytest.mark.worker
def test_one_worker_of_concurrency_one_runs_the_parent_and_every_chunk(gan_dataset, start_worker):
    name = gan_dataset
    start_worker()  # -c 1: nobody else takes the chunks, so the parent must run them itself
    job = job_enqueue(kind="score_ambiguity", params={"dataset": name, "chunk_images": 8})
    seen = set()

    def finished():
        row = Job.objects.get(pk=job.pk)
        seen.add(row.progress)
        return row.is_finished

    wait_for(finished, timeout=300, interval=0.05, what="the chunked job")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    chunks = _chunks(job)
    assert len(chunks) > 2 and {c.worker for c in chunks} == {job.worker}
    # While its chunks ran, the parent showed their progress (the SSIMs are its first 80 %).
    assert any(0 < p < 0.8 for p in seen), sorted(seen)
    assert all(c.status == Job.Status.SUCCEEDED for c in chunks)
    assert len(_rows(name)) == len(_pairs(name))


@pytest.mark.django_db
def test_a_rerun_parent_reuses_its_chunks(tmp_path, inline_jobs, one_torch_thread):
    name = square_gan_dataset(tmp_path)
    job = job_enqueue(kind="score_ambiguity", params={"dataset": name, "chunk_images": 10}, send=False)
    claimed = job_claim(job_id=job.pk, worker="w:1")
    ctx = JobContext(job_id=job.pk, attempt=claimed.attempts, params=claimed.params, state=claimed.state)
    dataset = Dataset.objects.get(name=name)
    planned = chunks_plan(ctx, dataset, pair_generators(dataset), chunk_images=10)
    assert len(planned) >= 4 and Job.objects.get(pk=job.pk).state["chunks"] == planned
    assert job_run(job_id=planned[0]["id"], worker="w:1") == Job.Status.SUCCEEDED
    # The worker died here; the reaper hands the parent to a second attempt.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)
    assert job_run(job_id=job.pk, worker="w:2") == Job.Status.SUCCEEDED
    chunks = _chunks(job)
    assert [c.pk for c in chunks] == [c["id"] for c in planned]
    assert [c.attempts for c in chunks] == [1] * len(chunks) and chunks[0].worker == "w:1"
    assert len(_rows(name)) == len(_pairs(name)) == Job.objects.get(pk=job.pk).result["ssim_computed"]


@pytest.mark.django_db
def test_a_chunk_that_fails_every_attempt_fails_the_parent_by_name_and_stops_the_rest(tmp_path, inline_jobs,
                                                                                     one_torch_thread):
    name = square_gan_dataset(tmp_path)
    gan = GanModel.objects.get()
    (Path(settings.MEDIA_ROOT) / gan.checkpoint).unlink()  # the generators are gone from the shared storage
    with pytest.raises(CommandError, match=r"chunk job \d+ \(happy->sad, 10 images\) failed after 3 attempt\(s\): "
                                           r"FileNotFoundError"):
        call_command("score_ambiguity", "--dataset", name, "--chunk-images", "10", "--inline", **QUIET)
    parent = Job.objects.get(kind="score_ambiguity")
    assert parent.status == Job.Status.FAILED
    chunks = _chunks(parent)
    assert chunks[0].status == Job.Status.FAILED and chunks[0].attempts == 3
    assert {c.status for c in chunks[1:]} == {Job.Status.CANCELLED}
    assert not TransformScore.objects.exists()


@pytest.mark.django_db
def test_cancelling_a_job_cancels_its_chunks():
    parent = JobFactory(kind="score_ambiguity", status=Job.Status.RUNNING, attempts=1)
    other_parent = JobFactory(kind="score_ambiguity", status=Job.Status.RUNNING, attempts=1)
    queued = JobFactory(kind="score_chunk", parent=parent, status=Job.Status.QUEUED)
    running = JobFactory(kind="score_chunk", parent=parent, status=Job.Status.RUNNING)
    done = JobFactory(kind="score_chunk", parent=parent, status=Job.Status.SUCCEEDED)
    other = JobFactory(kind="score_chunk", parent=other_parent, status=Job.Status.QUEUED)
    job_cancel(job_id=parent.pk)
    status = dict(Job.objects.values_list("pk", "status"))
    assert status[queued.pk] == Job.Status.CANCELLED and status[done.pk] == Job.Status.SUCCEEDED
    assert Job.objects.get(pk=running.pk).cancel_requested and Job.objects.get(pk=parent.pk).cancel_requested
    assert status[other.pk] == Job.Status.QUEUED and not Job.objects.get(pk=other.pk).cancel_requested


@pytest.mark.django_db
def test_a_chunk_is_enqueued_only_as_a_part_of_a_scoring_job_and_its_params_are_checked():
    params = {"gan": 1, "direction": "AB", "epoch": 1, "ids": [1, 2]}
    # By hand (the API and the pages call job_enqueue so) a chunk has no parent: refused.
    with pytest.raises(JobParamsError, match="score_chunk jobs are parts of a score_ambiguity job"):
        job_enqueue(kind="score_chunk", params=params)
    with pytest.raises(JobParamsError, match="score_chunk jobs are parts of a score_ambiguity job"):
        job_enqueue(kind="score_chunk", params=params, parent=JobFactory(kind="train_classifier"))
    parent = JobFactory(kind="score_ambiguity", status=Job.Status.RUNNING, attempts=1)
    with pytest.raises(JobParamsError, match="import_dataset jobs are not parts of a score_ambiguity job"):
        job_enqueue(kind="import_dataset", params={}, parent=parent)
    ctx = JobContext(job_id=parent.pk, attempt=1, params={}, state={})
    with pytest.raises(JobParamsError, match="gan 1 is not a finished CycleGAN"):
        ctx.child_enqueue(kind="score_chunk", params=params)
    assert not Job.objects.filter(kind="score_chunk").exists()


@pytest.mark.django_db
def test_a_chunk_cannot_be_started_through_the_api(curator_api):
    response = curator_api.post("/api/jobs/", {"kind": "score_chunk", "params": {"gan": 1}}, format="json")
    assert response.status_code == 400 and "parts of a score_ambiguity job" in str(response.data)
    assert not Job.objects.exists()
