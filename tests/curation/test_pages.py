"""The browser pages through Django's test client: who sees and may use the job forms, what a bad parameter shows,
child jobs folded into their parent, the row poll that stops, the run comparison, the generator snapshot pick and
the dataset summary."""
import re
from pathlib import Path

import pytest

from curation.models import GanModel, Image, Job, Run
from curation.services import image_label_change
from curation.web.selectors.dataset import report_tables
from tests.factories import GanModelFactory, JobFactory, RunFactory

pytestmark = pytest.mark.django_db


def text(response):
    return response.content.decode()


# Jobs page


def test_reviewers_see_jobs_but_no_forms_and_may_not_start_or_cancel(as_reviewer, faces):
    job = JobFactory(kind="train_classifier", params={"dataset": "faces"}, status=Job.Status.RUNNING)
    page = text(as_reviewer.get("/jobs/"))
    assert f'id="job-{job.pk}"' in page and "train_classifier" in page
    assert "Start a job" not in page and "Cancel</button>" not in page
    response = as_reviewer.post("/jobs/start/train/", {"train-dataset": "faces", "train-arch": "small_cnn"})
    assert response.status_code == 403
    assert as_reviewer.post(f"/jobs/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert Job.objects.count() == 1 and not job.cancel_requested


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get("/jobs/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_curator_starts_a_training_job_from_the_form(as_curator, curator, faces):
    page = text(as_curator.get("/jobs/"))
    for title in ("Import a dataset", "Train a classifier", "Train a CycleGAN pair", "Generate images",
                  "Score ambiguity", "Retrain on cleaned labels"):
        assert title in page
    response = as_curator.post("/jobs/start/train/", {
        "train-dataset": "faces", "train-arch": "small_cnn", "train-epochs": "2", "train-batch_size": "16",
        "train-folds": "0"})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/#job-{job.pk}"
    assert job.kind == "train_classifier" and job.created_by == curator
    assert (job.params["dataset"], job.params["arch"], job.params["epochs"], job.params["batch_size"]) == \
        ("faces", "small_cnn", 2, 16)
    assert f"Job {job.pk} (train_classifier) queued." in text(as_curator.get("/jobs/"))


@pytest.mark.parametrize("key, data, message", [
    ("train", {"train-dataset": "faces", "train-arch": "small_cnn", "train-folds": "1"},
     "folds must be 0 (none) or 2-10, not 1"),
    ("train", {"train-dataset": "faces", "train-arch": "small_cnn", "train-epochs": "two"}, "Enter a whole number."),
    ("retrain", {"retrain-dataset": "faces", "retrain-augmented": "on"},
     "Augmented adds images made by a CycleGAN, and faces has no trained CycleGAN pair yet: train one with"),
    ("generate", {"generate-dataset": "faces", "generate-source": "happy", "generate-target": "sad",
                  "generate-n": "5"}, "no trained CycleGAN for happy and sad in faces"),
    ("score", {"score-dataset": "faces", "score-threshold": "1.5"}, "threshold must be in (0, 1], not 1.5"),
    ("import", {"import-path": "/no/such/folder", "import-format": "csv", "import-name": "x"},
     "path &#x27;/no/such/folder&#x27; is not an existing file or folder below the import roots"),
    ("import", {"import-path": "/tmp", "import-format": "csv", "import-name": "bad name!"},
     "dataset name &#x27;bad name!&#x27;"),
])
def test_bad_parameters_are_named_on_the_page_and_create_no_job(as_curator, faces, key, data, message):
    response = as_curator.post(f"/jobs/start/{key}/", data)
    assert response.status_code == 400
    page = text(response)
    assert message in page
    assert re.search(rf'<details class="start" id="start-{key}"\s+open>', page), "the failing form stays open"
    assert Job.objects.count() == 0


def test_child_chunk_jobs_are_counted_on_their_parent_not_listed(as_curator, faces, django_assert_max_num_queries):
    parent = JobFactory(kind="score_ambiguity", params={"dataset": "faces"}, status=Job.Status.RUNNING)
    chunks = [JobFactory(kind="score_chunk", parent=parent, params={"chunk": i}, status=s)
              for i, s in enumerate((Job.Status.SUCCEEDED, Job.Status.SUCCEEDED, Job.Status.RUNNING))]
    for i in range(30):
        JobFactory(kind="import_dataset", params={"name": f"n{i}"}, status=Job.Status.SUCCEEDED)
    # 10: the retrain form counts the chosen dataset's train split once (it offers seeds below 5,000 images).
    with django_assert_max_num_queries(10):
        first = text(as_curator.get("/jobs/"))
    older = text(as_curator.get("/jobs/?page=2"))
    assert all(f'id="job-{c.pk}"' not in first + older for c in chunks)
    assert f'id="job-{parent.pk}"' in older and "2/3 chunks done" in older
    assert first.count('class="job-row') == 25


def test_the_row_poll_stops_with_286_once_the_job_has_ended(as_reviewer, faces):
    job = JobFactory(kind="train_classifier", params={"dataset": "faces"}, status=Job.Status.RUNNING,
                     progress=0.42, message="final model: epoch 2/5")
    running = as_reviewer.get(f"/jobs/{job.pk}/row/", HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in text(running)
    assert "width:42%" in text(running) and "final model: epoch 2/5" in text(running)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error="RuntimeError: out of memory", progress=0.5)
    ended = as_reviewer.get(f"/jobs/{job.pk}/row/", HTTP_HX_REQUEST="true")
    assert ended.status_code == 286
    assert "hx-trigger" not in text(ended) and "RuntimeError: out of memory" in text(ended)


def test_a_curator_cancels_a_queued_job(as_curator, faces):
    job = JobFactory(kind="train_classifier", params={"dataset": "faces"}, status=Job.Status.QUEUED)
    response = as_curator.post(f"/jobs/{job.pk}/cancel/", HTTP_HX_REQUEST="true")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.cancel_requested
    assert response.status_code == 286 and 'data-status="cancelled"' in text(response)


def test_retrain_from_the_page_reuses_the_latest_runs_settings(as_curator, faces):
    RunFactory(dataset=faces, arch="small_cnn", status=Run.Status.SUCCEEDED, folds=3,
               config={"arch": "small_cnn", "size": 64, "epochs": 7, "batch_size": 16, "lr": 0.001, "seed": 5})
    response = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": "faces", "retrain-reduced": "on"})
    assert response.status_code == 302
    p = Job.objects.get().params
    assert (p["arch"], p["epochs"], p["batch_size"], p["lr"], p["seed"]) == ("small_cnn", 7, 16, 0.001, 5)
    assert p["reduced"] is True and p["augmented"] is False and p["folds"] == 0


def test_cancel_works_without_javascript(as_curator, faces):
    job = JobFactory(kind="train_classifier", params={"dataset": "faces"}, status=Job.Status.RUNNING)
    response = as_curator.post(f"/jobs/{job.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/#job-{job.pk}"
    job.refresh_from_db()
    assert job.cancel_requested and job.status == Job.Status.RUNNING  # the worker stops it at its next check
    page = text(as_curator.get("/jobs/"))
    assert f"Job {job.pk}: cancelling." in page and "(cancelling)" in page


# Runs and their comparison


def _snapshot(settings, run, rows):
    rel = f"runs/{run.pk}/snapshot.csv"
    path = Path(settings.MEDIA_ROOT) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("split,source,id,path,label\n" + "".join(f"train,{s},{i},p{i},{label}\n" for s, i, label in rows))
    Run.objects.filter(pk=run.pk).update(snapshot_file=rel)


def _metrics(acc, recall0, confusion01):
    recall = [recall0] + [0.5] * 7
    confusion = [[0] * 8 for _ in range(8)]
    confusion[0][0], confusion[0][1] = 10 - confusion01, confusion01
    return {"accuracy": acc, "macro_f1": acc - 0.1, "precision": [0.6] * 8, "recall": recall,
            "support": [10] * 8, "confusion": confusion}


@pytest.fixture
def two_runs(faces, settings):
    history = [{"epoch": e, "train_loss": 2 - e / 10, "val_loss": 2.1 - e / 10, "train_acc": e / 10,
                "val_acc": e / 12} for e in (1, 2, 3)]
    base = RunFactory(dataset=faces, arch="small_cnn", status=Run.Status.SUCCEEDED, history=history,
                      test_metrics=_metrics(0.50, 0.40, 3), test_split_hash="a" * 64,
                      selection={"train": 4, "val": 0, "test": 1}, plots={"examples": "runs/x/examples.png"})
    cleaned = RunFactory(dataset=faces, arch="small_cnn", status=Run.Status.SUCCEEDED, history=history,
                         reduced=True, augmented=True, test_metrics=_metrics(0.56, 0.55, 1),
                         test_split_hash="a" * 64, selection={"train": 4, "val": 0, "test": 1})
    _snapshot(settings, base, [("image", 1, "happy"), ("image", 2, "happy"), ("image", 3, "sad"), ("image", 4, "sad")])
    _snapshot(settings, cleaned, [("image", 1, "happy"), ("image", 2, "sad"), ("image", 4, "sad"),
                                  ("generated", 7, "sad"), ("generated", 8, "happy")])
    return base, cleaned


def test_the_runs_page_lists_runs_with_compare_checkboxes(as_reviewer, two_runs):
    base, cleaned = two_runs
    page = text(as_reviewer.get("/datasets/faces/runs/"))
    assert f'name="ids" value="{base.pk}"' in page and f'name="ids" value="{cleaned.pk}"' in page
    assert "reduced" in page and "50.0 %" in page
    assert f'href="/runs/compare/?ids={base.pk},{cleaned.pk}">vs run {base.pk}</a>' in page


def test_the_comparison_shows_deltas_snapshot_differences_and_confusion_links(as_reviewer, two_runs):
    base, cleaned = two_runs
    response = as_reviewer.get(f"/runs/compare/?ids={base.pk},{cleaned.pk}")
    assert response.status_code == 200
    page = text(response)
    accuracy = re.search(r'data-metric="accuracy">(.*?)</tr>', page, re.S).group(1)
    assert "50.0 %" in accuracy and "56.0 %" in accuracy and "+0.060" in accuracy
    neutral = re.search(r'data-class="neutral">(.*?)</tr>', page, re.S).group(1)
    assert "+0.150" in neutral  # recall 0.40 -> 0.55
    assert 'data-diff="images_dropped">1 images dropped' in page
    assert 'data-diff="relabelled">1 relabelled: happy→sad 1' in page
    assert 'data-diff="generated_added">2 generated images added' in page
    link = (f'/review/?dataset=faces&amp;split=test&amp;label=neutral&amp;run={cleaned.pk}&amp;predicted=happy'
            f'&amp;status=any')
    assert f'href="{link}"' in page
    assert "<svg" in page and "<polyline" in page and 'src="/media/runs/x/examples.png"' in page
    assert "split-warning" not in page


def test_the_comparison_warns_when_test_splits_differ_and_keeps_the_given_baseline(as_reviewer, two_runs):
    base, cleaned = two_runs
    Run.objects.filter(pk=base.pk).update(test_split_hash="b" * 64)
    page = text(as_reviewer.get(f"/runs/compare/?ids={cleaned.pk}&ids={base.pk}"))
    assert 'id="split-warning"' in page
    assert f"Baseline: run {base.pk}." in page  # checkbox ids: the oldest run is the baseline
    page = text(as_reviewer.get(f"/runs/compare/?ids={cleaned.pk},{base.pk}"))
    assert f"Baseline: run {cleaned.pk}." in page and "-0.060" in page


def test_a_snapshot_diff_is_cached_by_the_two_snapshots_hashes(as_reviewer, two_runs, settings):
    import uuid

    base, cleaned = two_runs
    for run in two_runs:
        Run.objects.filter(pk=run.pk).update(snapshot_hash=uuid.uuid4().hex)
    url = f"/runs/compare/?ids={base.pk},{cleaned.pk}"
    assert 'data-diff="images_dropped">1 images dropped' in text(as_reviewer.get(url))
    for run in two_runs:  # a snapshot never changes once written: the diff is not read again
        (Path(settings.MEDIA_ROOT) / f"runs/{run.pk}/snapshot.csv").unlink()
    page = text(as_reviewer.get(url))
    assert 'data-diff="images_dropped">1 images dropped' in page and "(file missing)" in page
    Run.objects.filter(pk=cleaned.pk).update(snapshot_hash="")  # no hash, no cache: the diff is computed
    assert "not available (snapshot file missing)" in text(as_reviewer.get(url))


@pytest.mark.parametrize("query, message", [
    ("ids=1", "pick two or more runs"), ("ids=1,x", "run ids are whole numbers; got &#x27;x&#x27;"),
    ("ids=99998,99999", "no run with id 99998, 99999"),
])
def test_a_comparison_of_fewer_than_two_runs_says_why(as_reviewer, faces, query, message):
    response = as_reviewer.get(f"/runs/compare/?{query}")
    assert response.status_code == 400 and message in text(response)


# Generators


@pytest.fixture
def gan(faces, settings):
    media = Path(settings.MEDIA_ROOT)
    losses = []
    for epoch in (1, 2, 3, 4):
        entry = {"epoch": epoch, "G_A": 1 / epoch, "G_B": 1.1 / epoch, "cycle": 2 / epoch, "idt": 0.5, "D_A": 0.25,
                 "D_B": 0.26, "samples": f"gans/1/samples/epoch{epoch:04d}.png"}
        if epoch in (2, 4):
            entry["generators"] = f"gans/1/generators/epoch{epoch:04d}.pt"
            (media / entry["generators"]).parent.mkdir(parents=True, exist_ok=True)
            (media / entry["generators"]).write_bytes(b"x")
            entry["quality"] = {"AB": {"ssim_to_source": 0.81, "target_rate": 0.7, "source_target_rate": 0.1},
                                "BA": {"ssim_to_source": 0.79, "target_rate": 0.6, "source_target_rate": 0.2}}
        losses.append(entry)
    return GanModelFactory(dataset=faces, source_label=1, target_label=2, epoch=4, losses=losses,
                           status=GanModel.Status.SUCCEEDED, checkpoint="gans/1/last.pt")


def test_the_generators_page_shows_losses_samples_quality_and_the_scoring_epoch(as_reviewer, gan):
    page = text(as_reviewer.get("/datasets/faces/generators/"))
    assert "happy ↔ sad" in page and "<polyline" in page
    assert 'src="/media/gans/1/samples/epoch0004.png"' in page
    assert (f"use <strong>this CycleGAN ({gan.pk})</strong> for happy ↔ sad (the newest finished), with the generators "
            f"of <strong>epoch 4</strong> (the last)") in page
    assert "70.0 %" in page and "0.81" in page
    assert 'class="pick-epoch"' not in page  # reviewers do not get the form
    page = text(as_reviewer.get(f"/datasets/faces/generators/?epoch{gan.pk}=2"))
    assert 'src="/media/gans/1/samples/epoch0002.png"' in page


def test_a_curator_picks_a_saved_snapshot_epoch_for_scoring(as_curator, gan):
    response = as_curator.post(f"/gans/{gan.pk}/epoch/", {"epoch": "2"})
    assert response.status_code == 302
    gan.refresh_from_db()
    assert gan.chosen_epoch == 2
    page = text(as_curator.get("/datasets/faces/generators/"))
    assert "scoring now uses the generators of epoch 2" in page
    assert (f"use <strong>this CycleGAN ({gan.pk})</strong> for happy ↔ sad (chosen by a curator), with the generators "
            f"of <strong>epoch 2</strong> (chosen)") in page


@pytest.mark.parametrize("epoch, message", [
    ("3", "epoch 3 of CycleGAN {pk} has no saved generators; snapshot epochs: 2, 4"),
    ("0", "Ensure this value is greater than or equal to 1."),
])
def test_an_epoch_without_saved_generators_is_refused(as_curator, gan, epoch, message):
    response = as_curator.post(f"/gans/{gan.pk}/epoch/", {"epoch": epoch})
    assert response.status_code == 400 and message.format(pk=gan.pk) in text(response)
    gan.refresh_from_db()
    assert gan.chosen_epoch is None


def test_a_snapshot_whose_file_is_gone_is_refused(as_curator, gan, settings):
    (Path(settings.MEDIA_ROOT) / "gans/1/generators/epoch0002.pt").unlink()
    response = as_curator.post(f"/gans/{gan.pk}/epoch/", {"epoch": "2"})
    assert response.status_code == 400 and "missing on disk" in text(response)


def test_reviewers_may_not_pick_a_snapshot(as_reviewer, gan):
    assert as_reviewer.post(f"/gans/{gan.pk}/epoch/", {"epoch": "2"}).status_code == 403
    gan.refresh_from_db()
    assert gan.chosen_epoch is None


# Dataset page


def test_the_dataset_page_counts_classes_before_and_after_cleaning(as_reviewer, user, faces):
    happy = list(Image.objects.filter(dataset=faces, label=1, split="train"))
    Image.objects.filter(pk__in=[happy[0].pk, happy[1].pk]).update(flagged=True)
    image_label_change(image_id=happy[0].pk, action="relabel", label=2, expected_version=1, user=user)
    image_label_change(image_id=happy[2].pk, action="exclude", expected_version=1, user=user)
    page = text(as_reviewer.get("/datasets/faces/"))
    row = lambda name: re.search(rf'data-class="{name}">(.*?)</tr>', page, re.S).group(1)  # noqa: E731
    happy_row, sad_row = row("happy"), row("sad")
    # 5 happy imported (4 train, 1 test); one relabelled to sad, one excluded
    assert '<td class="before">5</td><td class="after">3</td>' in happy_row and "-2" in happy_row
    assert '<td class="before">0</td><td class="after">1</td>' in sad_row
    # flag rates by current label on train: happy 1 of 3 (the flag of the relabelled image went with it to sad)
    assert "1 (33.3 %)" in happy_row and "1 (100.0 %)" in sad_row
    assert "2 of 5 reviewed" in page and "Flagged images reviewed: 1 of 2" in page
    assert "reviewer 2" in page


def test_the_dataset_page_shows_agreement_and_calibration_or_says_they_are_not_available(as_reviewer, faces):
    import importlib.util

    page = text(as_reviewer.get("/datasets/faces/"))
    modules = (("agreement", "curation.review.agreement"), ("calibration", "curation.scoring.calibration"))
    for section, module in modules:
        body = re.search(rf'<section id="{section}">(.*?)</section>', page, re.S).group(1)
        if importlib.util.find_spec(module) is None:
            assert "Not available." in body
        else:
            assert "Not available." not in body
    agreement = re.search(r'<section id="agreement">(.*?)</section>', page, re.S).group(1)
    assert "Each image needs one review, so there are no second opinions to compare" in agreement
    assert '<table class="report calibration">' in re.search(r'<section id="calibration">(.*?)</section>', page,
                                                            re.S).group(1)


def test_pages_of_an_unknown_dataset_are_404(as_reviewer):
    for url in ("/datasets/nope/", "/datasets/nope/runs/", "/datasets/nope/generators/"):
        assert as_reviewer.get(url).status_code == 404


def test_home_links_each_dataset_to_its_pages(as_reviewer, faces):
    page = text(as_reviewer.get("/"))
    assert 'href="/datasets/faces/"' in page and 'href="/datasets/faces/runs/"' in page


def test_report_tables_render_any_plain_report():
    tables = report_tables({"kappa": 0.61, "pairs": 12, "per_class": {"happy": {"kappa": 0.7, "n": 5}},
                            "rows": [{"threshold": 0.8, "precision": 0.9}]})
    assert tables[0]["rows"] == [["kappa", 0.61], ["pairs", 12]]
    assert tables[1]["headers"] == ["", "kappa", "n"] and tables[1]["rows"] == [["happy", 0.7, 5]]
    assert tables[2]["headers"] == ["threshold", "precision"] and tables[2]["rows"] == [[0.8, 0.9]]
    assert report_tables(None) == []


def test_the_pages_import_no_torch():
    """Web processes never import torch: the pages name architectures and profiles without importing them."""
    import subprocess
    import sys

    code = ("import sys, django; django.setup(); import fer_site.urls, curation.web.views, "
            "curation.templatetags.charts, curation.templatetags.pages; sys.exit(3 if 'torch' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or "torch was imported"


def test_line_chart_draws_one_line_per_series_and_skips_missing_points():
    from curation.templatetags.charts import line_chart

    svg = line_chart([{"name": "run 1 <val>", "points": [(1, 0.2), (2, None), (3, 0.4)]},
                      {"name": "run 2", "points": [(1, 0.3), (2, 0.5)]}], title="validation accuracy")
    assert svg.count("<polyline") == 2 and "run 1 &lt;val&gt;" in svg
    first = svg.split('<polyline points="')[1].split('"')[0]
    assert len(first.split()) == 2  # the None point is left out
    assert "no data yet" in line_chart([{"name": "x", "points": []}], title="losses")


def test_bench_pages_prints_its_figures_and_leaves_nothing_behind(settings, capsys):
    from django.contrib.auth import get_user_model

    from benchmarks.pages import main as bench_pages
    from curation.models import Dataset

    users, files = get_user_model().objects.count(), list(Path(settings.MEDIA_ROOT).rglob("*"))
    capsys.readouterr()
    bench_pages(["--rows", "500", "--parents", "3", "--chunks", "4", "--repeat", "1"])
    text = capsys.readouterr().out
    assert "two snapshots of 500 and" in text and "baseline: csv.reader" in text and "GET /runs/compare/" in text
    assert "3 parents x 4 chunk jobs (15 jobs in the table)" in text and "GET /jobs/" in text
    assert (Dataset.objects.count(), Run.objects.count(), Job.objects.count()) == (0, 0, 0)
    assert get_user_model().objects.count() == users
    assert [p for p in Path(settings.MEDIA_ROOT).rglob("*.csv")] == [p for p in files if p.suffix == ".csv"]
