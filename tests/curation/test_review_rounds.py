"""Review rounds in the product: a curator turns on "rescore after every N decisions"; the Nth decision queues a
rescore (out-of-fold models refitted on the labels as reviewed, then the queue rescored) without stopping anyone,
and bad settings are refused by the command, the form and the API with nothing queued."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from curation.jobs.runner import job_run
from curation.jobs.services import job_enqueue
from curation.models import Dataset, Image, Job, Run
from curation.services import image_label_change
from tests.curation.conftest import square_dataset

pytestmark = pytest.mark.usefixtures("inline_jobs")


def _decide(client, image, action="confirm"):
    response = client.post(reverse("review_decide"), {"image_id": image.pk, "version": image.version,
                                                      "decision": action, "dataset": image.dataset.name})
    assert response.status_code in (200, 302)


@pytest.mark.django_db
def test_the_nth_decision_queues_one_rescore_and_reviewers_go_on(tmp_path, as_reviewer):
    name = square_dataset(tmp_path)
    call_command("review_settings", name, "--rescore-every", "3", stdout=io.StringIO())
    train = list(Image.objects.filter(dataset__name=name, split="train").order_by("id")[:7])
    for image in train[:2]:
        _decide(as_reviewer, image)
    assert not Job.objects.filter(kind="rescore").exists()
    _decide(as_reviewer, train[2])
    (job,) = Job.objects.filter(kind="rescore")
    assert job.status == Job.Status.QUEUED and job.params == {"dataset": name, "folds": 3}
    for image in train[3:7]:  # while it waits, decisions go on and queue no second one
        _decide(as_reviewer, image)
    assert Job.objects.filter(kind="rescore").count() == 1
    assert Image.objects.filter(pk__in=[i.pk for i in train], status=Image.Status.CONFIRMED).count() == 7

    # Once it has finished, the count starts again from when it was queued: 3 more decisions queue the next.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    more = list(Image.objects.filter(dataset__name=name, split="train", status="unreviewed").order_by("id")[:3])
    for image in more:
        _decide(as_reviewer, image)
    assert Job.objects.filter(kind="rescore").count() == 2

    call_command("review_settings", name, "--rescore-every", "off", stdout=io.StringIO())
    Job.objects.filter(kind="rescore").update(status=Job.Status.SUCCEEDED)
    for image in Image.objects.filter(dataset__name=name, split="train", status="unreviewed").order_by("id")[:4]:
        _decide(as_reviewer, image)
    assert Job.objects.filter(kind="rescore").count() == 2


@pytest.mark.django_db
def test_a_rescore_refits_on_the_reviewed_labels_and_rescores(tmp_path, user):
    name = square_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, "--arch", "small_cnn", "--epochs", "1", "--batch-size", "32",
                 "--folds", "2", "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    call_command("score_ambiguity", "--dataset", name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    excluded, relabelled = Image.objects.filter(dataset__name=name, split="train").order_by("id")[:2]
    image_label_change(image_id=excluded.pk, action="exclude", expected_version=1, user=user)
    image_label_change(image_id=relabelled.pk, action="relabel", label=(relabelled.label + 1) % 8,
                       expected_version=1, user=user)
    before = dict(Image.objects.filter(dataset__name=name, split="train").values_list("pk", "label_quality"))

    job = job_enqueue(kind="rescore", params={"dataset": name, "folds": 2}, send=False)
    job_run(job_id=job.pk, worker="test")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    train_job, score_job = Job.objects.filter(parent=job).order_by("id")
    assert (train_job.kind, score_job.kind) == ("train_classifier", "score_ambiguity")
    assert {train_job.status, score_job.status} == {Job.Status.SUCCEEDED}
    refit = Run.objects.get(pk=job.result["run"])
    # The latest run's settings, on the labels as reviewed: the excluded image dropped, the relabel applied and
    # trusted, nothing else dropped.
    assert refit.folds == 2 and refit.reduced and refit.config["arch"] == "small_cnn" and refit.config["epochs"] == 1
    assert refit.selection["dropped_excluded"] == 1 and refit.selection["dropped_flagged_unconfirmed"] == 0
    assert refit.selection["relabelled"] == 1 and refit.selection["trusted"] == 1
    after = dict(Image.objects.filter(dataset__name=name, split="train").values_list("pk", "label_quality"))
    assert after != before  # scored again, from the refitted models


@pytest.mark.django_db
@pytest.mark.parametrize("value, problem", [("0", "rescore every must be 1-100,000 decisions (or off), not 0"),
                                            ("lots", "rescore every must be a whole number of decisions")])
def test_a_bad_setting_is_refused_by_the_command_and_the_form(value, problem, faces, as_curator):
    with pytest.raises(CommandError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        call_command("review_settings", "faces", "--rescore-every", value, stdout=io.StringIO())
    page = as_curator.post(reverse("dataset_rescore_every", args=["faces"]), {"rescore_every": value})
    assert page.status_code == 400 and problem[1:] in page.content.decode()
    assert Dataset.objects.get(name="faces").rescore_every is None


@pytest.mark.django_db
def test_only_curators_turn_rounds_on(faces, as_reviewer):
    response = as_reviewer.post(reverse("dataset_rescore_every", args=["faces"]), {"rescore_every": "50"})
    assert response.status_code == 403 and Dataset.objects.get(name="faces").rescore_every is None


@pytest.mark.django_db
def test_the_api_refuses_a_bad_rescore_by_name_and_queues_nothing(curator_api, faces):
    response = curator_api.post("/api/jobs/", {"kind": "rescore", "params": {"dataset": "faces", "folds": 1}},
                                format="json")
    assert response.status_code == 400 and "folds must be a whole number 2-10" in str(response.json())
    response = curator_api.post("/api/jobs/", {"kind": "rescore", "params": {"dataset": "nope"}}, format="json")
    assert response.status_code == 400 and "nope" in str(response.json())
    assert not Job.objects.exists()
