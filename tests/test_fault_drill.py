"""End-to-end fault drill on PostgreSQL and Redis, as the scaled deployment runs: two real Celery workers, jobs
started with `manage.py ... --no-wait` as a user does, and faults on purpose:

- the worker training the classifier is SIGKILLed mid-training: the other one re-runs it (attempt 2, resumed from
  its last epoch's checkpoint);
- Redis dies (kill -9, nothing persisted) while scoring is asked for, comes back empty, and is killed and restarted
  again while scoring runs: the reaper re-sends the job whose message was lost, and the workers reconnect;
- two reviewers (threads, through the review services) decide from the queue at the same time, then decide the
  very same images at the same moment.

At the end: every job (the chunks of a scoring job too) has exactly one outcome, a success; no TransformScore is
duplicated or missing (one row per image and generator direction); no decision is duplicated or lost (LabelChange
rows are the decisions that won; every loser got a VersionConflict); and the CSV export says what was decided.

The Redis is the test's own (tests/private_redis.py), so the shared one is never touched.
"""
import csv
import io
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest
from django.db import connection

from curation.cleaning_bench.reviewers import read_truth
from curation.models import (
    Dataset,
    GanModel,
    Image,
    Job,
    LabelChange,
    TransformScore,
    WorkerHeartbeat,
)
from curation.review.services import image_claim_next, image_decide
from curation.services import VersionConflict
from tests.conftest import REPO, WorkerProcess, wait_for, worker_database_url
from tests.factories import UserFactory
from tests.private_redis import REDIS_SERVER, PrivateRedis
from training.labels import CLASSES
from training.synthetic_faces import make_synthetic_faces

pytestmark = [pytest.mark.worker, pytest.mark.slow]

FACES = 480  # 8 classes; about 350 train images at 32 px: every stage takes seconds, training long enough to kill
ON_CI = os.environ.get("CI", "").lower() == "true"


class Drill:
    def __init__(self, tmp_path, settings, redis):
        self.tmp_path, self.redis = tmp_path, redis
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="fer_site.settings.test",
            DATABASE_URL=worker_database_url(),
            CELERY_BROKER_URL=redis.url,
            FER_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            FER_DATA_DIR=str(settings.DATA_DIR),
            # A queued job whose message was lost with Redis is sent again after this long (default 15 min).
            FER_JOB_RESEND_QUEUED_AFTER_SECONDS="3",
            OMP_NUM_THREADS="1",
        )
        self.workers = []

    def start_workers(self, count):
        """Start `count` workers at once and wait until each has reported in."""
        started = []
        for _ in range(count):
            name = f"drill{len(self.workers)}"
            w = WorkerProcess(env=self.env, log_path=self.tmp_path / f"{name}.log", name=f"{name}@%h")
            self.workers.append(w)
            started.append((w, name))
        for w, name in started:
            w.wait_ready(lambda n=name: WorkerHeartbeat.objects.filter(name__startswith=f"{n}@").exists(), timeout=120)
        return [w for w, _ in started]

    def manage(self, *args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=120)

    def enqueue(self, *args):
        """Start a job as a user does (`--no-wait`): returns its id."""
        done = self.manage(*args, "--no-wait")
        assert done.returncode == 0, done.stderr[-3000:]
        return int(done.stdout.strip().splitlines()[-1])

    def wait_succeeded(self, job_id, timeout):
        job = wait_for(lambda: (lambda j: j if j.is_finished else None)(Job.objects.get(pk=job_id)),
                       timeout=timeout, interval=0.2, what=f"job {job_id} to finish")
        assert job.status == Job.Status.SUCCEEDED, \
            f"job {job_id} {job.status}: {job.error[-2000:]}\n{self.logs()[-4000:]}"
        return job

    def worker_running(self, job):
        """The WorkerProcess whose process group holds the pid running `job` (job.worker is host:pid)."""
        pid = int(job.worker.rsplit(":", 1)[1])
        group = os.getpgid(pid)
        return next(w for w in self.workers if w.proc.pid == group)

    def logs(self):
        return "".join(w.log() for w in self.workers)

    def stop(self):
        for w in self.workers:
            w.stop()


@pytest.fixture
def drill(transactional_db, tmp_path, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the fault drill runs on PostgreSQL and a Redis server, as the scaled deployment does "
                    "(CI=true with DATABASE_URL=postgres://... runs it); SQLite is the one-process embedded mode")
    if not os.path.exists(REDIS_SERVER):
        if ON_CI:
            pytest.fail(f"the fault drill needs redis-server ({REDIS_SERVER} is missing)")
        pytest.skip(f"the fault drill needs redis-server ({REDIS_SERVER} is missing)")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    d = Drill(tmp_path, settings, redis)
    yield d
    d.stop()
    redis.stop()


def _ended_lines(logs):
    """{job id: [outcome, ...]} from the runner's 'job N attempt K ended: STATUS' lines of every worker."""
    outcomes = {}
    for job_id, status in re.findall(r"job (\d+) attempt \d+ ended: (\w+)", logs):
        outcomes.setdefault(int(job_id), []).append(status)
    return outcomes


@pytest.mark.timeout(420)
def test_pipeline_survives_a_killed_worker_a_redis_restart_and_concurrent_reviewers(drill, tmp_path):
    started = time.monotonic()
    faces = tmp_path / "faces"
    make_synthetic_faces(faces, n=FACES, size=32, noise=0.2, seed=3)
    truth = read_truth(faces / "truth.csv")
    drill.start_workers(2)

    imported = drill.enqueue("import_dataset", str(faces / "labels.csv"), "--format", "csv", "--name", "drill")
    drill.wait_succeeded(imported, timeout=120)
    dataset = Dataset.objects.get(name="drill")

    # 1. Kill the worker that trains, once the first out-of-fold model has saved some epochs.
    train = drill.enqueue("train_classifier", "--dataset", "drill", "--arch", "small_cnn", "--size", "32",
                          "--epochs", "6", "--folds", "2", "--batch-size", "32")
    wait_for(lambda: Job.objects.get(pk=train).progress >= 0.12, timeout=180, interval=0.1, what="training under way")
    job = Job.objects.get(pk=train)
    victim = drill.worker_running(job)
    victim.kill()
    assert Job.objects.get(pk=train).status == Job.Status.RUNNING, "training ended before the kill"
    survivor = next(w for w in drill.workers if w is not victim)
    job = drill.wait_succeeded(train, timeout=300)
    assert job.attempts == 2
    assert drill.worker_running(job) is survivor
    assert f"job {train} attempt 2 ended: succeeded" in survivor.log()
    assert re.search(r"resuming (fold\d|final)_last\.pt from epoch \d+", survivor.log()), \
        "the re-run started over instead of resuming from the last epoch"
    drill.start_workers(1)  # two workers again

    gan_job = drill.enqueue("train_cyclegan", "--dataset", "drill", "--pair", "happy", "contempt", "--epochs", "1",
                            "--epochs-decay", "1", "--size", "32")
    drill.wait_succeeded(gan_job, timeout=180)

    # 2. Redis dies; scoring is asked for while it is down: its message is never sent. Redis comes back empty.
    drill.redis.kill()
    asked = drill.manage("score_ambiguity", "--dataset", "drill", "--no-wait")
    assert asked.returncode == 0, asked.stderr[-3000:]
    score = int(asked.stdout.strip().splitlines()[-1])
    assert "could not send job" in asked.stderr
    drill.redis.start()
    # Only the reaper can send it now (the queue is empty); once a worker took it, Redis dies and restarts again.
    wait_for(lambda: Job.objects.get(pk=score).status != Job.Status.QUEUED, timeout=90, interval=0.05,
             what="the reaper to re-send the scoring job")
    job = Job.objects.get(pk=score)
    # A re-send stamps queued_at anew, and the reaper re-sends only jobs queued for 3 s or more.
    assert (job.queued_at - job.created_at).total_seconds() >= 2.5, "the job ran without being re-sent"
    drill.redis.kill()
    assert Job.objects.get(pk=score).status == Job.Status.RUNNING, "scoring ended before Redis was killed"
    time.sleep(1.0)
    drill.redis.start()
    drill.wait_succeeded(score, timeout=240)
    # The workers are consuming again after the restart: a new job runs on one of them.
    generate = drill.enqueue("generate_images", "--dataset", "drill", "--pair", "happy", "contempt", "--n", "6")
    assert not drill.wait_succeeded(generate, timeout=120).worker.startswith("inline:")

    # 3. Two reviewers at once: first each from the queue, then both on the very same images.
    reviewers = [UserFactory(username="drill-a"), UserFactory(username="drill-b")]
    wins, conflicts, errors = [], [], []
    lock = threading.Lock()

    def from_queue(user, count):
        try:
            for _ in range(count):
                image = image_claim_next(user=user, dataset=dataset, filters={"split": Image.Split.TRAIN})
                true = truth[image.path].label
                action, label = ("confirm", None) if image.label == true else ("relabel", true)
                decision = image_decide(user=user, image_id=image.pk, action=action, version=image.version, label=label)
                with lock:
                    wins.append((image.pk, user.username, decision.action, decision.change.new_label))
        except Exception as exc:  # noqa: BLE001 -- reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def contest(user, image_ids, action, barrier):
        try:
            for pk in image_ids:
                image = Image.objects.get(pk=pk)
                label = truth[image.path].label if action == "relabel" else None
                barrier.wait(timeout=30)  # both have read the same version; now both decide
                try:
                    decision = image_decide(user=user, image_id=pk, action=action, version=image.version, label=label)
                except VersionConflict:
                    with lock:
                        conflicts.append((pk, user.username))
                else:
                    # A relabel to the label the image already has is recorded as a confirm (decision.action).
                    with lock:
                        wins.append((pk, user.username, decision.action, decision.change.new_label))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def together(*targets):
        threads = [threading.Thread(target=t, args=a) for t, a in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors

    together((from_queue, (reviewers[0], 12)), (from_queue, (reviewers[1], 12)))
    queued = [w[0] for w in wins]
    assert len(queued) == 24 and len(set(queued)) == 24, "two reviewers were handed the same image"
    rng = np.random.default_rng(0)
    untouched = list(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, status=Image.Status.UNREVIEWED)
                     .values_list("pk", flat=True))
    contested = sorted(rng.choice(untouched, 10, replace=False).tolist())
    barrier = threading.Barrier(2)
    together((contest, (reviewers[0], contested, "relabel", barrier)),
             (contest, (reviewers[1], contested, "exclude", barrier)))
    by_image = Counter(w[0] for w in wins if w[0] in contested)
    assert all(by_image[pk] == 1 for pk in contested), f"an image was decided twice or not at all: {by_image}"
    assert sorted(pk for pk, _ in conflicts) == contested, "every loser must be told of the conflict"

    # Every job, chunks included, succeeded, with exactly one outcome recorded by the workers.
    jobs = list(Job.objects.order_by("id"))
    assert {j.status for j in jobs} == {Job.Status.SUCCEEDED}, [(j.pk, j.kind, j.status) for j in jobs]
    outcomes = _ended_lines(drill.logs())
    assert {j.pk: outcomes.get(j.pk) for j in jobs} == {j.pk: ["succeeded"] for j in jobs}
    assert {j.pk for j in jobs} >= {imported, train, gan_job, score, generate}

    # One TransformScore per train image and generator direction leaving its label: none lost, none twice.
    gan = GanModel.objects.get(dataset=dataset)
    train_images = Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN)
    expected = {(pk, "AB") for pk in train_images.filter(original_label=gan.source_label).values_list("pk", flat=True)}
    expected |= {(pk, "BA") for pk in train_images.filter(original_label=gan.target_label).values_list("pk", flat=True)}
    rows = list(TransformScore.objects.filter(gan=gan).values_list("image_id", "direction"))
    assert len(rows) == len(expected) and set(rows) == expected

    # The audit is exactly the decisions that won.
    audit = list(LabelChange.objects.filter(image__dataset=dataset).values_list("image_id", "user__username", "action",
                                                                                "new_label"))
    assert sorted(audit) == sorted(wins)

    # The export says what was decided, image by image.
    client_user = reviewers[0]
    from django.test import Client

    client = Client()
    client.force_login(client_user)
    response = client.get(f"/api/datasets/{dataset.name}/export.csv")
    assert response.status_code == 200
    exported = {r["path"]: r for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))}
    images = {i.pk: i for i in Image.objects.filter(dataset=dataset)}
    assert len(exported) == len(images)
    decided = {pk: (user, action, label) for pk, user, action, label in wins}
    for pk, image in images.items():
        row = exported[image.path]
        if pk not in decided:
            assert (row["status"], row["label"], row["reviewed_by"]) == (
                "unreviewed", CLASSES[image.original_label], ""), row
            continue
        user, action, label = decided[pk]
        status = {"exclude": "excluded", "confirm": "confirmed"}.get(
            action, "relabelled" if label != image.original_label else "confirmed")
        assert (row["status"], row["label"], row["reviewed_by"]) == (status, CLASSES[label], user), row

    # Every image says what its audit trail says: verify_labels replays it (and exits non-zero otherwise).
    from django.core.management import call_command

    call_command("verify_labels", "--dataset", dataset.name)
    print(f"fault drill: {len(jobs)} jobs, {len(rows)} scores, {len(wins)} decisions, {len(conflicts)} conflicts, "
          f"{time.monotonic() - started:.0f} s")
