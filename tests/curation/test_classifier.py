"""Classifier runs through the product: what they train on, the frozen test split, the stored run, and resume
after a worker is killed mid-training."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command

from curation.classifier.selection import select_training_data
from curation.models import Image, Job, Run
from curation.services import image_label_change
from tests.conftest import wait_for
from tests.curation.conftest import square_dataset
from tests.factories import DatasetFactory, GanModelFactory, GeneratedImageFactory, ImageFactory

TINY = ["--arch", "small_cnn", "--epochs", "2", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("inline_jobs")


@pytest.mark.django_db
def test_reduced_and_augmented_select_exactly_the_documented_images(user):
    ds = DatasetFactory()
    kept = ImageFactory(dataset=ds, label=1, original_label=1)
    excluded = ImageFactory(dataset=ds)
    flagged = ImageFactory(dataset=ds, flagged=True)
    flagged_confirmed = ImageFactory(dataset=ds, flagged=True)
    relabelled = ImageFactory(dataset=ds, label=1, original_label=1)
    val = ImageFactory(dataset=ds, split="val")
    test = ImageFactory(dataset=ds, split="test", flagged=True)
    image_label_change(image_id=excluded.pk, action="exclude", expected_version=1, user=user)
    image_label_change(image_id=flagged_confirmed.pk, action="confirm", expected_version=1, user=user)
    image_label_change(image_id=relabelled.pk, action="relabel", label=7, expected_version=1, user=user)
    image_label_change(image_id=test.pk, action="relabel", label=0, expected_version=1, user=user)
    gan = GanModelFactory(dataset=ds, source_label=1, target_label=2)
    from_train = GeneratedImageFactory(gan=gan, source_image=kept, target_label=2, file="g/1.png", content_hash="a")
    GeneratedImageFactory(gan=gan, source_image=test, target_label=2, file="g/2.png", content_hash="b")
    GeneratedImageFactory(gan=gan, source_image=excluded, target_label=2, file="g/3.png", content_hash="c")

    def train_of(sel):
        return {(i.kind, i.id): i.label for i in sel.train}

    base = select_training_data(dataset=ds)
    assert train_of(base) == {("image", i.pk): 1 for i in (kept, excluded, flagged, flagged_confirmed, relabelled)}

    reduced = select_training_data(dataset=ds, reduced=True)
    assert train_of(reduced) == {("image", kept.pk): 1, ("image", flagged_confirmed.pk): 1, ("image", relabelled.pk): 7}
    assert reduced.counts["dropped_excluded"] == 1 and reduced.counts["dropped_flagged_unconfirmed"] == 1

    # Doubtful by cleanlab instead: the SSIM-flagged image stays, the cleanlab-flagged unreviewed one goes.
    by_classifier = ImageFactory(dataset=ds, label=1, original_label=1, classifier_flagged=True)
    classifier = select_training_data(dataset=ds, reduced=True, doubtful="classifier")
    assert train_of(classifier) == {**train_of(reduced), ("image", flagged.pk): 1}
    either = select_training_data(dataset=ds, reduced=True, doubtful="either")
    assert train_of(either) == train_of(reduced) and either.counts["dropped_flagged_unconfirmed"] == 2
    assert (by_classifier.pk not in {i.id for i in classifier.train}
            and ("image", by_classifier.pk) in train_of(select_training_data(dataset=ds, reduced=True)))
    by_classifier.delete()

    both = select_training_data(dataset=ds, reduced=True, augmented=True)
    assert train_of(both) == {**train_of(reduced), ("generated", from_train.pk): 2}

    for sel in (base, reduced, both):  # val and test as imported, whatever happened to them
        assert [(i.id, i.label) for i in sel.val] == [(val.pk, 1)]
        assert [(i.id, i.label) for i in sel.test] == [(test.pk, 1)]


@pytest.mark.django_db
def test_training_stores_a_complete_run_scored_on_the_frozen_test_split(tmp_path, settings, user):
    name = square_dataset(tmp_path)
    out = io.StringIO()
    call_command("train_classifier", "--dataset", name, *TINY, "--folds", "2", "--inline", stdout=out, stderr=io.StringIO())
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED and [h["epoch"] for h in run.history] == [1, 2]
    m = run.test_metrics
    assert sum(map(sum, m["confusion"])) == run.selection["test"] == 36
    assert len(m["precision"]) == len(m["recall"]) == 8
    assert f"test accuracy {m['accuracy']:.4f}" in out.getvalue()
    media = Path(settings.MEDIA_ROOT)
    for plot in ("history", "confusion", "per_class", "examples"):
        assert (media / run.plots[plot]).read_bytes()[:4] == b"\x89PNG"
    checkpoint = torch.load(media / run.checkpoint, weights_only=True)
    assert checkpoint["config"]["arch"] == "small_cnn"
    oof = np.load(media / run.oof_file)
    train_ids = set(Image.objects.filter(dataset__name=name, split="train").values_list("id", flat=True))
    assert set(oof["ids"].tolist()) == train_ids
    np.testing.assert_allclose(oof["probs"].sum(1), 1, atol=1e-4)

    # Reviewers change train and test labels; the reduced run's test split stays what it was.
    test_image = Image.objects.filter(dataset__name=name, split="test").first()
    image_label_change(image_id=test_image.pk, action="relabel", label=(test_image.label + 1) % 8, expected_version=1, user=user)
    train_image = Image.objects.filter(dataset__name=name, split="train").first()
    image_label_change(image_id=train_image.pk, action="exclude", expected_version=1, user=user)
    out = io.StringIO()
    call_command("retrain", "--dataset", name, "--reduced", "--inline", stdout=out, stderr=io.StringIO())
    reduced = Run.objects.first()
    assert reduced.reduced and reduced.config["arch"] == "small_cnn" and reduced.folds == 0
    assert reduced.selection["train"] == run.selection["train"] - 1
    assert reduced.test_split_hash == run.test_split_hash
    assert "(same test split)" in out.getvalue()


@pytest.mark.worker
def test_training_resumes_from_its_last_epoch_after_the_worker_is_killed(start_worker, tmp_path, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.5
    name = square_dataset(tmp_path, n=400)
    first = start_worker()
    from curation.jobs.services import job_enqueue

    job = job_enqueue(kind="train_classifier", params={"dataset": name, "arch": "small_cnn", "epochs": 8,
                                                       "batch_size": 32, "patience": 0})
    wait_for(lambda: len((Run.objects.first() or Run(history=[])).history) >= 2, timeout=240, interval=0.2,
             what="two epochs")
    first.kill()
    epochs_before = len(Run.objects.get().history)
    assert epochs_before < 8, "training ended before the kill"
    second = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=300, interval=0.5, what="the resumed run")
    job.refresh_from_db()
    run = Run.objects.get()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2
    assert [h["epoch"] for h in run.history] == list(range(1, 9))
    assert f"resuming final_last.pt from epoch {epochs_before}" in second.log() or \
        f"resuming final_last.pt from epoch {epochs_before + 1}" in second.log()
    assert Run.objects.count() == 1 and run.status == Run.Status.SUCCEEDED


@pytest.mark.django_db
def test_a_retrain_reports_its_paired_test_against_the_run_it_derives_from(tmp_path, user):
    name = square_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    first = Run.objects.get()
    out = io.StringIO()
    call_command("retrain", "--dataset", name, "--reduced", "--doubtful", "none", "--inline", stdout=out,
                 stderr=io.StringIO())
    text = out.getvalue()
    assert f"vs run {first.pk} (the run it derives from): accuracy" in text, text
    assert "paired test on 36 test images: accuracy" in text and "(95 % CI " in text and "McNemar exact p=" in text
