"""The retrain preview (curation/classifier/preview.py) against the run the retrain then trains: the page's and the
command's counts are the run's selection; the form starts on a doubtful rule that flags images; "Generate, then
retrain" never retrains when its generation fails; a significant loss is read back to the training-set change."""
import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from curation.classifier.loss_cause import loss_cause
from curation.jobs.runner import job_run, worker_label
from curation.models import GanModel, Image, Job, Run
from curation.services import image_label_change
from tests.curation.conftest import square_dataset, square_gan_dataset
from tests.factories import DatasetFactory, GanModelFactory, GeneratedImageFactory, ImageFactory, RunFactory

TINY = ["--arch", "small_cnn", "--epochs", "1", "--size", "32", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("inline_jobs")


def _quiet():
    return {"stdout": io.StringIO(), "stderr": io.StringIO()}


def reviewed_flagged_dataset(tmp_path, curator):
    """square_dataset with a tiny run, cleanlab flags on its first 20 unreviewed train images and SSIM flags on none
    (as CPU generators leave them), and reviews: 2 of the flagged and 2 others relabelled, 3 excluded, 5 confirmed."""
    name = square_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY, "--inline", **_quiet())
    train = list(Image.objects.filter(dataset__name=name, split="train").order_by("id"))
    Image.objects.filter(pk__in=[i.pk for i in train[:20]]).update(classifier_flagged=True)
    for image in train[:2] + train[30:32]:
        image_label_change(image_id=image.pk, action="relabel", label=(image.label + 1) % 8, expected_version=1,
                           user=curator)
    for image in train[40:43]:
        image_label_change(image_id=image.pk, action="exclude", expected_version=1, user=curator)
    for image in train[50:55]:
        image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=curator)
    return name, len(train)


def _preview_counts(html):
    """The numbers of the page's preview, by line."""
    lines = dict(re.findall(r'<li data-preview="([a-z-]+)">(.*?)</li>', html, re.S))
    number = lambda key, pattern: int(re.search(pattern, lines[key], re.S).group(1))  # noqa: E731
    return {"train": number("train", r"^(\d+) train images"),
            "dropped_excluded": number("dropped", r"Drops (\d+) excluded"),
            "dropped_flagged_unconfirmed": number("dropped", r'data-count="doubtful">(\d+)<'),
            "relabelled": number("relabelled", r"Applies (\d+)"),
            "trusted": number("trusted", r"Trusts (\d+)")}


@pytest.mark.django_db
def test_the_forms_preview_is_what_the_retrain_then_trains_on(tmp_path, as_curator, curator):
    name, train = reviewed_flagged_dataset(tmp_path, curator)
    form = {"retrain-dataset": name, "retrain-reduced": "on", "retrain-doubtful": "classifier"}
    # The Preview button (the page without script): the preview, and nothing queued.
    jobs_before = Job.objects.count()
    response = as_curator.post("/jobs/start/retrain/", {**form, "action": "preview"})
    assert response.status_code == 200 and Job.objects.count() == jobs_before
    preview = _preview_counts(response.content.decode())
    assert preview == {"train": train - 3 - 18, "dropped_excluded": 3, "dropped_flagged_unconfirmed": 18,
                       "relabelled": 4, "trusted": 9}
    # The htmx fragment the form reloads on a change says the same.
    fragment = as_curator.get("/jobs/retrain-preview/", form).content.decode()
    assert _preview_counts(fragment) == preview and "<html" not in fragment

    response = as_curator.post("/jobs/start/retrain/", {**form, "action": "start"})
    assert response.status_code == 302
    job = Job.objects.filter(kind="train_classifier").order_by("-id").first()
    assert job_run(job_id=job.pk, worker=worker_label("inline:")) == Job.Status.SUCCEEDED
    run = Run.objects.get(pk=Job.objects.get(pk=job.pk).result["run"])
    assert {key: run.selection[key] for key in preview} == preview
    assert run.selection["doubtful"] == "classifier"


@pytest.mark.django_db
def test_the_form_starts_on_no_rule_where_the_ssim_rule_flags_none(tmp_path, as_curator, curator):
    """Not on the classifier's flags: dropping them unreviewed cost 11.9 points on the demo (preview.py says why)."""
    name, _ = reviewed_flagged_dataset(tmp_path, curator)
    page = as_curator.get(f"/jobs/?start=retrain&dataset={name}").content.decode()
    assert re.search(r'<option value="none" selected>', page)
    assert "the SSIM rule flags no unreviewed image of sq" in page and "the classifier flags 18" in page
    # A POST that leaves the rule out (a script's) gets the form's default too.
    as_curator.post("/jobs/start/retrain/", {"retrain-dataset": name, "retrain-reduced": "on", "action": "start"})
    assert Job.objects.filter(kind="train_classifier").order_by("-id").first().params["doubtful"] == "none"
    # The published rule stays available by name, and its preview says it drops nothing here, in the page's words.
    fragment = as_curator.get("/jobs/retrain-preview/", {"retrain-dataset": name, "retrain-reduced": "on",
                                                          "retrain-doubtful": "ssim"}).content.decode()
    warning = re.search(r'data-problem="doubtful_flags_none">(.*?)</p>', fragment, re.S).group(1)
    assert "The SSIM rule flags no unreviewed image of sq" in warning and "would drop 18" in warning
    assert "--" not in warning
    # The command keeps ssim as its default and says so in its preview, in its own words.
    err = io.StringIO()
    call_command("retrain", "--dataset", name, "--reduced", "--no-wait", stdout=io.StringIO(), stderr=err)
    assert "note: --doubtful ssim flags no unreviewed train image of this dataset" in err.getvalue()
    assert "--doubtful classifier would drop 18" in err.getvalue()


@pytest.mark.django_db
def test_generate_then_retrain_never_retrains_when_its_generation_fails(tmp_path, as_curator):
    name = square_gan_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY, "--inline", **_quiet())
    page = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": name, "retrain-augmented": "on",
                                                    "action": "start"})
    assert page.status_code == 400 and "“Generate, then retrain” generates up to 100 images" in page.content.decode()
    response = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": name, "retrain-augmented": "on",
                                                        "action": "generate_retrain"})
    assert response.status_code == 302
    chain = Job.objects.get(kind="generate_retrain")
    assert chain.params["train"]["augmented"] is True and chain.params["train"]["epochs"] == 1
    # The generators' file is lost: every attempt of the generation fails.
    gan = GanModel.objects.get()
    (Path(settings.MEDIA_ROOT) / gan.checkpoint).unlink()
    assert job_run(job_id=chain.pk, worker=worker_label("inline:")) == Job.Status.FAILED
    chain.refresh_from_db()
    generate = Job.objects.get(kind="generate_images", parent=chain)
    assert generate.status == Job.Status.FAILED and f"generate_images job {generate.pk}" in chain.message
    assert not Job.objects.filter(parent=chain, kind="train_classifier").exists()
    assert Run.objects.filter(augmented=True).count() == 0


@pytest.mark.django_db
def test_generate_then_retrain_is_refused_without_generators_that_generate(as_curator):
    ds = DatasetFactory(name="plain")
    for split in ("train", "train", "val", "test"):
        ImageFactory(dataset=ds, split=split)
    from curation.jobs.errors import JobParamsError
    from curation.jobs.services import job_enqueue

    with pytest.raises(JobParamsError, match="has no trained CycleGAN pair"):
        job_enqueue(kind="generate_retrain", params={"dataset": "plain", "train": {"epochs": 1}})
    failing = {"target_rate": 0.1, "source_target_rate": 0.3}
    GanModelFactory(dataset=ds, status=GanModel.Status.SUCCEEDED, epoch=1,
                    losses=[{"epoch": 1, "quality": {"AB": failing, "BA": failing}}])
    with pytest.raises(JobParamsError, match="failed its quality check"):
        job_enqueue(kind="generate_retrain", params={"dataset": "plain", "train": {"epochs": 1}})
    # The page says so before anything starts, and offers no chain.
    fragment = as_curator.get("/jobs/retrain-preview/", {"retrain-dataset": "plain",
                                                          "retrain-augmented": "on"}).content.decode()
    assert "failed their quality check" in fragment and 'value="generate_retrain"' not in fragment


@pytest.mark.django_db
def test_a_loss_is_read_back_to_the_biggest_training_set_change():
    ds = DatasetFactory(name="faces")
    source = ImageFactory(dataset=ds)
    quality = {"AB": {"target_rate": 0.52, "source_target_rate": 0.2},
               "BA": {"target_rate": 0.79, "source_target_rate": 0.1}}
    gan = GanModelFactory(dataset=ds, status=GanModel.Status.SUCCEEDED, epoch=1,
                          losses=[{"epoch": 1, "quality": quality}])
    GeneratedImageFactory(gan=gan, source_image=source)
    base = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, test_metrics={"accuracy": 0.75},
                      selection={"train": 3000, "generated": 0, "relabelled": 0})
    worse = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, test_metrics={"accuracy": 0.68}, reduced=True,
                       augmented=True, selection={"train": 3209, "generated": 200, "relabelled": 9,
                                                  "dropped_flagged_unconfirmed": 0, "doubtful": "ssim"})
    cause = loss_cause(base, worse)
    assert cause["change"] == "generated" and cause["n"] == 200
    assert cause["text"].startswith("200 generated images added: generators passed their quality check with "
                                    "52%-79% target rates")
    assert cause["without"] == {"reduced": True, "augmented": False, "doubtful": "ssim"} and cause["compare"] is None
    # A run already trained without it is offered for the comparison.
    reduced = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, test_metrics={"accuracy": 0.74}, reduced=True,
                         selection={"train": 3009, "relabelled": 9, "doubtful": "ssim"})
    assert loss_cause(base, worse)["compare"] == reduced
    # Dropped doubtful images outnumbering the rest are named instead.
    worse.selection = {"train": 2500, "generated": 200, "dropped_flagged_unconfirmed": 700, "doubtful": "classifier"}
    cause = loss_cause(base, worse)
    assert cause["change"] == "doubtful" and cause["text"].startswith(
        "700 unreviewed images dropped as doubtful by the classifier's flags (cleanlab), without")
    assert cause["without"]["doubtful"] == "none"


@pytest.mark.django_db
def test_the_commands_report_names_the_likely_cause_of_a_significant_loss():
    import numpy as np

    from curation.classifier.predictions import run_predictions_path
    from curation.management.commands.train_classifier import print_run
    from training.metrics import classification_report

    ids = np.arange(1000, 1200)
    labels = ids % 8

    def run(right, **fields):
        predicted = np.where(right, labels, (labels + 1) % 8)
        r = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, plots={},
                       test_metrics=classification_report(labels, predicted, 8), **fields)
        path = run_predictions_path(r)
        path.parent.mkdir(parents=True, exist_ok=True)
        probs = np.full((len(ids), 8), 0.01, dtype=np.float32)
        probs[np.arange(len(ids)), predicted] = 0.93
        np.savez(path, ids=ids, labels=labels, probs=probs)
        return r

    ds = DatasetFactory(name="faces")
    index = np.arange(len(ids))
    base = run(index < 150, selection={"train": 3000, "test": 200})
    worse = run((index >= 40) & (index < 150), derived_from=base, reduced=True,
                selection={"train": 2300, "test": 200, "dropped_flagged_unconfirmed": 700, "relabelled": 9,
                           "doubtful": "either"})
    lines = []
    print_run(lines.append, worse)
    assert ("    most likely cause of the loss: 700 unreviewed images dropped as doubtful by either flag, without a "
            "reviewer's look") in lines
    same = run(index < 150, derived_from=base, selection={"train": 3000, "test": 200, "generated": 50})
    lines = []
    print_run(lines.append, same)  # no loss: no cause
    assert not any("most likely cause" in line for line in lines)
