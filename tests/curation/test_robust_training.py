"""--robust METHOD through the product: the commands, the jobs API and the forms queue it or refuse an unknown
method by name with nothing queued; a run records its method, and a retrain keeps it unless told otherwise."""
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import Image, Job, Run
from tests.curation.conftest import square_dataset

TINY = ["--arch", "small_cnn", "--size", "32", "--epochs", "2", "--batch-size", "32"]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_jobs")]


def _quiet():
    return {"stdout": io.StringIO(), "stderr": io.StringIO()}


def test_the_commands_queue_the_method_and_refuse_an_unknown_one(faces):
    call_command("train_classifier", "--dataset", "faces", "--arch", "small_cnn", "--robust", "eac", "--no-wait",
                 **_quiet())
    assert Job.objects.get().params["robust"] == "eac"
    for command in ("train_classifier", "retrain"):
        refused = (r"--robust: invalid choice: 'nope' \(choose from '?none'?, '?eac'?, '?gce'?, '?bootstrap'?, '?elr'?, "
                   r"'?dividemix'?, '?glc'?\)")
        with pytest.raises(CommandError, match=refused):
            call_command(command, "--dataset", "faces", "--robust", "nope", "--no-wait", **_quiet())
    # EAC needs class activation maps, which seed_cnn's dense head has not.
    with pytest.raises(CommandError, match="robust eac needs class activation maps, which seed_cnn has not"):
        call_command("train_classifier", "--dataset", "faces", "--arch", "seed_cnn", "--robust", "eac", "--no-wait",
                     **_quiet())
    assert Job.objects.count() == 1


def test_the_api_refuses_an_unknown_method_by_name_and_queues_a_known_one(curator_api, faces):
    response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
        "dataset": "faces", "arch": "small_cnn", "robust": "nope"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["params"] == [
        "robust must be one of none, eac, gce, bootstrap, elr, dividemix, glc, not 'nope'"]
    assert Job.objects.count() == 0
    response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
        "dataset": "faces", "arch": "small_cnn", "robust": "gce"}}, format="json")
    assert response.status_code == 201
    assert Job.objects.get().params["robust"] == "gce"


def _page_text(response):
    return response.content.decode()


@pytest.mark.parametrize("key", ["train", "retrain"])
def test_the_forms_refuse_an_unknown_method_and_queue_a_known_one(as_curator, faces, key):
    data = {f"{key}-dataset": "faces", f"{key}-robust": "nope"}
    if key == "train":
        data[f"{key}-arch"] = "small_cnn"
    response = as_curator.post(f"/jobs/start/{key}/", data)
    assert response.status_code == 400
    assert "Select a valid choice. nope is not one of the available choices." in _page_text(response)
    assert re.search(rf'<details class="start" id="start-{key}"\s+open>', _page_text(response))
    assert Job.objects.count() == 0
    response = as_curator.post(f"/jobs/start/{key}/", {**data, f"{key}-robust": "gce"})
    assert response.status_code == 302
    assert Job.objects.get().params["robust"] == "gce"


def test_a_robust_run_trains_end_to_end_and_records_its_method(tmp_path, settings):
    name = square_dataset(tmp_path, n=120)
    out = io.StringIO()
    call_command("train_classifier", "--dataset", name, *TINY, "--robust", "gce", "--inline", stdout=out,
                 stderr=io.StringIO())
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED and run.config["robust"] == "gce"
    assert "(baseline, small_cnn, robust gce)" in out.getvalue()
    checkpoint = torch.load(Path(settings.MEDIA_ROOT) / run.checkpoint, weights_only=True)
    assert checkpoint["config"]["robust"] == "gce"
    # A retrain keeps the latest run's method unless given one, and takes the one it is given.
    call_command("retrain", "--dataset", name, "--epochs", "1", "--no-wait", **_quiet())
    assert Job.objects.order_by("-pk").first().params["robust"] == "gce"
    call_command("retrain", "--dataset", name, "--epochs", "1", "--robust", "eac", "--no-wait", **_quiet())
    assert Job.objects.order_by("-pk").first().params["robust"] == "eac"


@pytest.mark.parametrize("method", ["elr", "dividemix"])
def test_the_from_scratch_methods_are_queued_by_the_command_the_retrain_form_and_the_api(as_curator, curator_api,
                                                                                          faces, method):
    call_command("train_classifier", "--dataset", "faces", "--arch", "small_cnn", "--robust", method, "--no-wait",
                 **_quiet())
    call_command("retrain", "--dataset", "faces", "--robust", method, "--no-wait", **_quiet())
    response = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": "faces", "retrain-robust": method})
    assert response.status_code == 302
    response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
        "dataset": "faces", "arch": "small_cnn", "robust": method}}, format="json")
    assert response.status_code == 201
    assert [job.params["robust"] for job in Job.objects.order_by("pk")] == [method] * 4


def test_a_dividemix_run_trains_end_to_end_with_its_two_networks(tmp_path, settings):
    # Two epochs: one of cross-entropy warm-up, then one divided. The run keeps one network (a plain classifier
    # checkpoint); its history says which phase each epoch was and how many images were labelled.
    name = square_dataset(tmp_path, n=120)
    out = io.StringIO()
    call_command("train_classifier", "--dataset", name, *TINY, "--robust", "dividemix", "--inline", stdout=out,
                 stderr=io.StringIO())
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED and run.config["robust"] == "dividemix"
    assert [h["phase"] for h in run.history] == ["warm-up", "divided"]
    assert 0 < run.history[1]["labelled"] <= 120
    checkpoint = torch.load(Path(settings.MEDIA_ROOT) / run.checkpoint, weights_only=True)
    assert "model_b" not in checkpoint and checkpoint["config"]["robust"] == "dividemix"


def test_glc_is_refused_with_nothing_to_estimate_from_by_the_command_the_api_and_the_form(as_curator, curator_api,
                                                                                            faces):
    # No reviewed train image: nothing says how labels go wrong. Reviewed images but no run with out-of-fold
    # probabilities: no model trained on the noisy labels to estimate it with. Each refused by name, nothing queued.
    no_reviews = "robust glc estimates how labels go wrong from reviewed labels, and dataset 'faces' has no train " \
                 "image a reviewer confirmed or relabelled"
    no_folds = "robust glc reads the out-of-fold probabilities of a run trained on the noisy labels, and dataset " \
               "'faces' has none: run train_classifier --folds 5 first"
    for problem in (no_reviews, no_folds):
        for command in ("train_classifier", "retrain"):
            with pytest.raises(CommandError, match=re.escape(problem)):
                call_command(command, "--dataset", "faces", "--arch", "small_cnn", "--robust", "glc", "--no-wait",
                             **_quiet())
        response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
            "dataset": "faces", "arch": "small_cnn", "robust": "glc"}}, format="json")
        assert response.status_code == 400 and problem in response.json()["errors"]["params"][0]
        response = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": "faces", "retrain-robust": "glc"})
        assert response.status_code == 400 and problem.replace("'", "&#x27;") in _page_text(response)
        faces.images.filter(split="train").update(status="confirmed")
    assert Job.objects.count() == 0


def test_a_glc_run_estimates_its_matrix_from_the_reviewed_images_out_of_fold_probabilities(tmp_path, settings):
    # A run with folds (the model trained on the noisy labels), then 24 reviewed train images: a glc run records the
    # matrix it trained through, estimated from those 24 images' out-of-fold probabilities, and succeeds.
    name = square_dataset(tmp_path, n=120)
    call_command("train_classifier", "--dataset", name, *TINY, "--epochs", "1", "--folds", "2", "--inline", **_quiet())
    folds_run = Run.objects.get()
    reviewed = Image.objects.filter(dataset__name=name, split="train").order_by("id")[:24]
    Image.objects.filter(pk__in=[i.pk for i in reviewed]).update(status="confirmed")
    preview, report = io.StringIO(), io.StringIO()
    call_command("train_classifier", "--dataset", name, *TINY, "--epochs", "1", "--robust", "glc", "--inline",
                 stdout=report, stderr=preview)
    assert (f"glc: corrects the loss by how labels go wrong, estimated from 24 reviewed train images (every reviewed "
            f"image: the audit has too few) and run {folds_run.pk}'s out-of-fold probabilities") in preview.getvalue()
    run = Run.objects.latest("pk")
    assert run.status == Run.Status.SUCCEEDED and run.config["robust"] == "glc"
    glc = run.selection["glc"]
    assert glc["from"] == "reviewed" and glc["run"] == folds_run.pk and glc["images"] == 24
    matrix = np.array(glc["matrix"])
    assert matrix.shape == (8, 8) and np.allclose(matrix.sum(1), 1)
    # Row k of a class with enough reviewed images is their out-of-fold probabilities' mean.
    with np.load(Path(settings.MEDIA_ROOT) / folds_run.oof_file) as oof:
        probs = dict(zip(oof["ids"].tolist(), oof["probs"]))
    label = int(np.argmax(glc["per_class"]))
    mean = np.mean([probs[i.pk] for i in reviewed if i.label == label], 0)
    np.testing.assert_allclose(matrix[label], mean / mean.sum(), atol=1e-5)
    assert f"  glc: corruption matrix from 24 reviewed train images (every reviewed image) and run {folds_run.pk}'s " \
           f"out-of-fold probabilities; mean diagonal {np.trace(matrix) / 8:.3f}" in report.getvalue()


def test_glc_estimates_from_the_random_audit_alone_once_it_has_enough_decided_images(_media_root):
    # 40 decided audit images of "neutral" (a simple random sample: it says neutral keeps its label 80 % of the time)
    # and 5 the queue served, all truly happy (reviewers relabelled them), beyond the audit's reach (3 unreviewed
    # images lie beyond them). The audit has
    # GLC_AUDIT_MIN decided images: C comes from it alone, and happy, with no audited image, takes the pooled row.
    # One audit decision fewer: from every reviewed image, the queue's five too.
    from curation.classifier.handler import glc_estimate
    from curation.classifier.params import GLC_AUDIT_MIN, glc_trusted
    from tests.factories import DatasetFactory, ImageFactory, RunFactory

    ds = DatasetFactory(name="audited")
    audited = [ImageFactory(dataset=ds, original_label=0, label=0, status=Image.Status.CONFIRMED, audit=True,
                            audit_key=(i + 0.5) / 100) for i in range(GLC_AUDIT_MIN)]
    queued = [ImageFactory(dataset=ds, original_label=0, label=1, status=Image.Status.RELABELLED,
                           audit_key=0.9 + i / 100) for i in range(5)]
    for i in range(3):  # not reviewed yet, the last in the audit's order: the audit has not reached the queue's five
        ImageFactory(dataset=ds, original_label=0, label=0, audit_key=0.97 + i / 100)
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, folds=3)
    folder = _media_root / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    neutral, happy = [0.8, 0.2] + [0.0] * 6, [0.5, 0.5] + [0.0] * 6
    np.savez(folder / "oof.npz", ids=np.array([i.pk for i in audited + queued]), labels=np.zeros(45, int),
             probs=np.array([neutral] * len(audited) + [happy] * len(queued), dtype=np.float32))
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")
    source, labels, origin = glc_trusted(ds)
    assert (source.pk, origin, set(labels)) == (run.pk, "audit", {i.pk for i in audited})
    glc = glc_estimate(ds)
    np.testing.assert_allclose(glc["matrix"][0], neutral, atol=1e-6)
    assert glc["fallback"] == [1, 2, 3, 4, 5, 6, 7] and glc["matrix"][1][1] == pytest.approx(0.8)
    Image.objects.filter(pk=audited[0].pk).update(status=Image.Status.UNREVIEWED)
    _, labels, origin = glc_trusted(ds)
    assert origin == "reviewed" and set(labels) == {i.pk for i in audited[1:] + queued}
    np.testing.assert_allclose(glc_estimate(ds)["matrix"][1], happy, atol=1e-6)
