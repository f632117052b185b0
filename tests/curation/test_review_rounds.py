"""Review rounds in the product: a curator turns on "rescore after every N decisions"; the Nth decision queues a
rescore (out-of-fold models refitted on the labels as reviewed, then the queue rescored) without stopping anyone,
and bad settings are refused by the command, the form and the API with nothing queued."""
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from curation.classifier.features import OOF_FEATURES_FILE
from curation.jobs.runner import job_run
from curation.jobs.services import job_enqueue
from curation.models import Dataset, Image, Job, Run
from curation.services import image_label_change
from tests.curation.conftest import square_dataset
from tests.factories import DatasetFactory, ImageFactory, RunFactory

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


def _auroc(wrong, suspicion):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.asarray(wrong, int), np.asarray(suspicion, float))


@pytest.mark.django_db
def test_after_a_round_of_relabels_the_rescored_queue_still_puts_the_wrong_labels_first(_media_root, user, client):
    """The fusion's fit on reviewed images reads each one's signals against the label the reviewer saw. Read
    against the label a reviewer gave it, a relabelled image looks clean while it counts as "changed", and a fit on
    that ranks the unreviewed images backwards (measured at full size: AUROC 0.21, 2.7 % wrong in round two). And
    decisions taken from the top of the queue only do not choose the ranking of the rest."""
    rng = np.random.default_rng(0)
    ds = DatasetFactory(name="rounds")
    n = 400
    truth = rng.integers(0, 8, n)
    wrong = rng.random(n) < 0.25
    given = np.where(wrong, (truth + rng.integers(1, 8, n)) % 8, truth)
    images = [ImageFactory(dataset=ds, path=f"f/{k}.png", label=int(g), original_label=int(g))
              for k, g in enumerate(given)]
    # Out-of-fold probabilities and embeddings that know the truth, noisily: the evidence of a fitted classifier.
    probs = rng.dirichlet(np.ones(8), n)
    probs[np.arange(n), truth] += 1.5 * rng.random(n)
    embeddings = np.eye(8)[truth] + 0.6 * rng.standard_normal((n, 8))
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, folds=2)
    folder = _media_root / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    np.savez(folder / "oof.npz", ids=np.array([i.pk for i in images]), labels=given,
             probs=(probs / probs.sum(1, keepdims=True)).astype(np.float32))
    np.save(folder / OOF_FEATURES_FILE, embeddings.astype(np.float16))
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")
    truth_of = {i.pk: int(t) for i, t in zip(images, truth)}

    call_command("score_ambiguity", "--dataset", ds.name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    queue = list(Image.objects.filter(dataset=ds).order_by("-suspicion", "id"))
    for image in queue[:100]:  # one round: a reviewer who is always right works the top quarter
        if image.label == truth_of[image.pk]:
            image_label_change(image_id=image.pk, action="confirm", expected_version=image.version, user=user)
        else:
            image_label_change(image_id=image.pk, action="relabel", label=truth_of[image.pk],
                               expected_version=image.version, user=user)
    first = {i.pk: i.suspicion for i in queue}

    call_command("score_ambiguity", "--dataset", ds.name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    report = Job.objects.filter(kind="score_ambiguity").order_by("-id").first().result["fusion"]
    assert report["reviewed"] == 100 and report["changed"] > 50, report
    # The classifier's signal, read against the labels the reviewer saw, found the changes it led them to.
    assert report["auroc"]["classifier"] > 0.7, report
    rest = list(Image.objects.filter(dataset=ds, status=Image.Status.UNREVIEWED))
    is_wrong = [i.label != truth_of[i.pk] for i in rest]
    before, after = [first[i.pk] for i in rest], [i.suspicion for i in rest]
    assert _auroc(is_wrong, after) > _auroc(is_wrong, before) - 0.05, report
    # What the next round takes: the rescored queue's next 30 hold as many wrong labels as the first queue's did.
    # A fit on these top-of-queue decisions alone (Datalab's score or the logistic model) found 3 of them, not 8.
    assert _wrong_in_top(30, after, is_wrong) >= _wrong_in_top(30, before, is_wrong) > 5, report
    client.force_login(user)
    page = client.get(reverse("dataset", args=[ds.name])).content.decode()
    assert "0 of the 100 reviewed images lie below the median suspicion; it learns from reviews once 20 do" in page

    # A reviewer who also samples the lower half gives the fit decisions across the queue; it may then choose.
    lower = sorted(rest, key=lambda i: i.suspicion)[:len(rest) // 2]
    for image in rng.choice(np.array(lower, dtype=object), 40, replace=False):
        image_label_change(image_id=image.pk, action="confirm" if image.label == truth_of[image.pk] else "relabel",
                           label=truth_of[image.pk], expected_version=image.version, user=user)
    call_command("score_ambiguity", "--dataset", ds.name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    report = Job.objects.filter(kind="score_ambiguity").order_by("-id").first().result["fusion"]
    rest = list(Image.objects.filter(dataset=ds, status=Image.Status.UNREVIEWED))
    is_wrong = [i.label != truth_of[i.pk] for i in rest]
    assert report["below_median"] == 40 and report["used"] != "default", report
    assert _auroc(is_wrong, [i.suspicion for i in rest]) > 0.85, report  # 0.93 by its logistic fit; default 0.96
    page = client.get(reverse("dataset", args=[ds.name])).content.decode()
    assert "learnt from the 140 reviews made by then: " in page and "below the median" not in page


def _wrong_in_top(k, suspicion, is_wrong):
    order = np.argsort(-np.asarray(suspicion, float), kind="stable")
    return int(np.asarray(is_wrong)[order[:k]].sum())


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


def _rounds_dataset(name, rescore_every):
    """A dataset a rescore can refit (two classes of four train images, a test image), rounds on."""
    ds = DatasetFactory(name=name, rescore_every=rescore_every)
    train = [ImageFactory(dataset=ds, label=1 + k % 2, original_label=1 + k % 2, path=f"{name}/{k}.png")
             for k in range(8)]
    ImageFactory(dataset=ds, split="test")
    return ds, train


def test_decisions_from_the_grid_and_a_dispute_resolution_queue_the_rescore_too(client, user, curator):
    """The grid's bulk decisions count toward "rescore after every N decisions" and trigger it themselves, as the
    review page's do; so does a curator's resolution of a dispute."""
    ds, train = _rounds_dataset("grid", 3)
    client.force_login(user)
    client.post(reverse("review_grid_decide"), {"pick": [f"{i.pk}:1" for i in train[:2]], "decision": "confirm",
                                                "dataset": "grid", "shown_at": "0"})
    assert not Job.objects.filter(kind="rescore").exists()
    response = client.post(reverse("review_grid_decide"), {"pick": [f"{train[2].pk}:1"], "decision": "exclude",
                                                           "dataset": "grid", "shown_at": "0"}, follow=True)
    (job,) = Job.objects.filter(kind="rescore")
    assert job.status == Job.Status.QUEUED and job.params == {"dataset": "grid", "folds": 3}
    assert "Rescoring the queue with the labels reviewed so far" in response.content.decode()

    ds, train = _rounds_dataset("double", 1)
    Dataset.objects.filter(pk=ds.pk).update(reviews_required=2)
    Image.objects.filter(pk=train[0].pk).update(disputed=True)
    client.force_login(curator)
    client.post(reverse("review_dispute_resolve"), {"image_id": train[0].pk, "version": 1, "decision": "exclude",
                                                    "dataset": "double"})
    assert Image.objects.get(pk=train[0].pk).status == Image.Status.EXCLUDED
    assert Job.objects.filter(kind="rescore", params__dataset="double", status=Job.Status.QUEUED).count() == 1
