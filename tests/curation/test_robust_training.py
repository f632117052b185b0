"""--robust METHOD through the product: the commands, the jobs API and the forms queue it or refuse an unknown
method by name with nothing queued; a run records its method, and a retrain keeps it unless told otherwise."""
import io
import re
from pathlib import Path

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import Job, Run
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
                   r"'?dividemix'?\)")
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
        "robust must be one of none, eac, gce, bootstrap, elr, dividemix, not 'nope'"]
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
