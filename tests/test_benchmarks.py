"""Every developer benchmark (benchmarks/) runs once as `python -m benchmarks.NAME` with the tiniest settings, in
its own process, exits 0 and prints its figures: a benchmark that breaks fails here. The ones that use the database
run against this test run's database (the processes tests start get its URL) with their own data folder."""
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from curation.models import Dataset, Image, Job, Run
from tests.conftest import REPO, worker_database_url
from training.synthetic_faces import make_synthetic_faces

pytestmark = pytest.mark.slow

NUMBER = r"[-\d.,]+"


def bench(name, *args, tmp_path, database=False, timeout=240):
    """Run `python -m benchmarks.NAME ARGS` in a process of its own; returns its CompletedProcess."""
    env = dict(os.environ, FER_DATA_DIR=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    if not database:  # a benchmark that makes its own database does so in its data folder (SQLite), never in CI's
        env.pop("DATABASE_URL", None)
        env.pop("CELERY_BROKER_URL", None)
    if database:
        env.update(DJANGO_SETTINGS_MODULE="fer_site.settings.test", DATABASE_URL=worker_database_url(),
                   FER_MEDIA_ROOT=str(settings.MEDIA_ROOT))
    return subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_figures(done, *patterns):
    """Exit 0, and each pattern (a regular expression) matches a line of what the benchmark printed."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    for pattern in patterns:
        assert re.search(pattern, done.stdout, re.MULTILINE), f"no line matches {pattern!r} in:\n{done.stdout}"


# --- no database ----------------------------------------------------------------------------------------------

def test_synthetic_faces(tmp_path):
    (tmp_path / "work").mkdir()
    done = bench("synthetic_faces", "--n", 16, "--size", 32, "--repeat", 1, "--dir", tmp_path / "work",
                 tmp_path=tmp_path)
    assert_figures(done, rf"^render \+ PNG write: +{NUMBER} faces/s",
                   rf"^floor: PNG encode\+write, faces: +{NUMBER} images/s")
    assert list((tmp_path / "work").iterdir()) == []  # it removes what it wrote


def test_train_speed(tmp_path):
    done = bench("train_speed", "--arch", "small_cnn", "--size", 32, "--batch-size", 8, "--steps", 2, "--warmup", 1,
                 "--device", "cpu", tmp_path=tmp_path)
    assert_figures(done, rf"model-only ceiling: +{NUMBER} images/s", rf"data pipeline: +{NUMBER} images/s")


def test_accuracy(tmp_path):
    done = bench("accuracy", "--n", 160, "--size", 32, "--archs", "small_cnn", "--epochs", 1, "--batch-size", 32,
                 "--data", tmp_path / "faces", "--json", tmp_path / "accuracy.json", tmp_path=tmp_path)
    assert_figures(done, rf"^small_cnn +clean labels: test accuracy {NUMBER}",
                   rf"^small_cnn +noisy labels: test accuracy {NUMBER}", r"^small_cnn on noisy labels: accuracy")
    assert (tmp_path / "accuracy.json").exists()


def test_pretrain(tmp_path):
    done = bench("pretrain", "--pretrain-n", 120, "--pretrain-epochs", 1, "--target-n", 120, "--epochs", 1,
                 "--size", 32, "--batch-size", 32, "--threads", 1, "--data", tmp_path / "faces",
                 "--json", tmp_path / "pretrain.json", tmp_path=tmp_path)
    assert_figures(done, rf"^scratch +{NUMBER}", rf"^pretrained +{NUMBER}",
                   rf"^the pretrained start: \+?{NUMBER} test accuracy against scratch")
    report = json.loads((tmp_path / "pretrain.json").read_text())
    assert report["gain"] == pytest.approx(report["runs"]["pretrained"]["accuracy"] - report["runs"]["scratch"]["accuracy"])


def test_robust_regime(tmp_path):
    make_synthetic_faces(tmp_path / "faces", n=120, size=32, noise=0.3, seed=0)
    done = bench("robust_regime", "--faces", tmp_path / "faces", "--runs", "ce:1", "glc:1", "oracle:1", "--threads", 1,
                 "--trusted-share", 0.1, "--out", tmp_path / "regime.json", tmp_path=tmp_path)
    assert_figures(done, rf"^{NUMBER} train images, {NUMBER} wrong labels", r"^\| ce:1 \| 1 \|",
                   r"^\| glc:1 \| 1 \|", rf"^    glc:1: C from {NUMBER} trusted images .* mean absolute error against "
                   rf"the data's own C {NUMBER}", r"^\| oracle:1 \| 1 \|")
    rows = {row["run"]: row for row in json.loads((tmp_path / "regime.json").read_text())}
    assert set(rows) == {"ce:1", "glc:1", "oracle:1"}
    assert rows["ce:1"]["trusted"] == rows["glc:1"]["trusted"] > 0 and rows["oracle:1"]["trusted"] == 0
    for row in rows.values():  # a wrong-labelled image is predicted as its given label, its true one, or neither
        assert row["fit_to_wrong_labels"] + row["wrong_labels_predicted_true"] <= 1.0
        assert 0.0 <= row["test_accuracy"] <= 1.0


def test_ssl_start(tmp_path):
    done = bench("ssl_start", "--n", 240, "--size", 32, "--ssl-epochs", 1, "--ssl-batch-size", 32, "--epochs", 1,
                 "--robust", "none", "gce", "dividemix@warmup=0", "--noise-model", "annotators", "--threads", 1,
                 "--json", tmp_path / "ssl.json", tmp_path=tmp_path)
    assert_figures(done, rf"^\d+ train \({NUMBER}% wrong labels, annotators\)",
                   rf"^seed 0: SimCLR {NUMBER} s, loss {NUMBER} -> {NUMBER}",
                   rf"^seed 0: embedding, 10-NN \(random weights -> SimCLR\): test accuracy with the true train labels "
                   rf"{NUMBER}% -> {NUMBER}%, with the given ones {NUMBER}% -> {NUMBER}% \(chance 12.5%\); neighbours' "
                   rf"disagreement finds the wrong train labels at AUROC {NUMBER} -> {NUMBER}$",
                   rf"^\| 0 \| none \| {NUMBER}% \| {NUMBER}% \| [-+]{NUMBER} \| \d+ \| \d+ \| {NUMBER}",
                   rf"^\| 0 \| gce \| {NUMBER}% \| {NUMBER}%", rf"^\| 0 \| dividemix@warmup=0 \| {NUMBER}%")
    report = json.loads((tmp_path / "ssl.json").read_text())
    assert [row["robust"] for row in report["pairs"]] == ["none", "gce", "dividemix@warmup=0"]
    for row in report["pairs"]:
        assert row["gain"] == pytest.approx(row["ssl"]["accuracy"] - row["scratch"]["accuracy"])
        # The SSL start took every classifier tensor but the class layer's; scratch took none.
        assert row["ssl"]["init"]["loaded"] == row["ssl"]["init"]["of"] - 2 and "init" not in row["scratch"]
    assert report["data"]["unlabelled"] == report["data"]["train"] + report["data"]["val"]
    readout = report["pretraining"]["0"]["neighbours"]  # the embedding's, at random weights and after SimCLR
    assert set(readout) == {"random", "ssl"} and all(0 <= r["knn_true"] <= 1 for r in readout.values())
    # A saved backbone is read back instead of pretraining again, and gives the same start.
    again = bench("ssl_start", "--n", 240, "--size", 32, "--ssl-epochs", 1, "--ssl-batch-size", 32, "--epochs", 1,
                  "--robust", "none", "--threads", 1, "--backbone", tmp_path / "b.pt", "--faces", tmp_path / "f",
                  "--json", tmp_path / "a.json", tmp_path=tmp_path)
    reread = bench("ssl_start", "--n", 240, "--size", 32, "--ssl-epochs", 1, "--ssl-batch-size", 32, "--epochs", 1,
                   "--robust", "none", "--threads", 1, "--backbone", tmp_path / "b.pt", "--faces", tmp_path / "f",
                   "--json", tmp_path / "b.json", tmp_path=tmp_path)
    assert_figures(reread, rf"^seed 0: SimCLR read from {tmp_path / 'b.pt'}")
    first, second = (json.loads((tmp_path / f).read_text())["pairs"][0] for f in ("a.json", "b.json"))
    assert_figures(again, r"^seed 0: SimCLR \d+ s")
    # The thread count sets only the speed, so another one reads the same weights.
    threads = bench("ssl_start", "--n", 240, "--size", 32, "--ssl-epochs", 1, "--ssl-batch-size", 32, "--epochs", 1,
                    "--robust", "none", "--threads", 2, "--backbone", tmp_path / "b.pt", "--faces", tmp_path / "f",
                    tmp_path=tmp_path)
    assert_figures(threads, rf"^seed 0: SimCLR read from {tmp_path / 'b.pt'}")
    for start in ("scratch", "ssl"):
        assert (first[start]["accuracy"], first[start]["best_epoch"]) == \
            (second[start]["accuracy"], second[start]["best_epoch"])
    # robust_regime starts every run from the same backbone file, and DivideMix's divisions are measured from it.
    regime = bench("robust_regime", "--faces", tmp_path / "f", "--init", tmp_path / "b.pt", "--runs", "ce:1",
                   "dividemix@warmup=0:1", "--threads", 1, "--out", tmp_path / "regime.json", tmp_path=tmp_path)
    assert_figures(regime, rf"start: {tmp_path / 'b.pt'}$", r"^    dividemix@dividemix_warmup=0:1 epoch 1: division AUROC A")
    for row in json.loads((tmp_path / "regime.json").read_text()):
        assert row["init"]["loaded"] == row["init"]["of"] - 2 > 0
    # queue_start ranks the train split from out-of-fold models of both starts, every fold of the SSL one from it.
    queue = bench("queue_start", "--faces", tmp_path / "f", "--backbone", tmp_path / "b.pt", "--epochs", 1,
                  "--folds", 2, "--threads", 1, "--json", tmp_path / "queue.json", tmp_path=tmp_path)
    assert_figures(queue, rf"^\| 0 \| scratch \| {NUMBER} \| {NUMBER} \| \d+ \| {NUMBER}% \| \d+ \|$",
                   rf"^\| 0 \| ssl \| {NUMBER}", rf"^SSL start - scratch, auroc: [-+]{NUMBER} \(mean")
    report = json.loads((tmp_path / "queue.json").read_text())
    train = json.loads((tmp_path / "a.json").read_text())["data"]["train"]
    assert report["budget"] == round(0.1 * train)
    (row,) = report["rows"]
    assert row["scratch"]["loaded"] == [0, 0] and min(row["ssl"]["loaded"]) > 0
    assert all(0 <= row[s]["wrong_in_top"] <= report["budget"] for s in ("scratch", "ssl"))


def test_ssl_start_reads_an_embedding_through_its_neighbours():
    from benchmarks.ssl_start import neighbour_readout

    # Two tight groups of faces, one a class; two train faces carry the other group's label, and one test face is
    # labelled by its group's true class, the other by the wrong one.
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    true = np.repeat([0, 1], 6)
    train = centres[true] + rng.normal(0, 0.01, (12, 3))
    given = true.copy()
    given[[0, 6]] = [1, 0]
    test = centres[[0, 1]] + rng.normal(0, 0.01, (2, 3))
    readout = neighbour_readout(train, test, given, true, np.array([0, 1]), k=3)
    assert readout["knn_true"] == readout["knn_given"] == 1.0  # two wrong labels of six are outvoted
    assert readout["wrong_auroc"] == 1.0  # each wrong label's neighbours all disagree with it, a right one's at most 1
    assert neighbour_readout(train, test, given, true, np.array([1, 0]), k=3)["knn_true"] == 0.0


def test_small_set(tmp_path):
    done = bench("small_set", "--n", 160, "--seeds", 2, "--epochs", 1, "--threads", 1, tmp_path=tmp_path)
    assert_figures(done, r"^made 160 faces", r"^\| today \| reviewed \| 1 \| ", r"^\| small \| baseline \| 0 \| ",
                   r"^  small: .*'by_size': True",
                   rf"^\| small \| reviewed \| 2 \| {NUMBER} \| {NUMBER} \| {NUMBER} \| [\d, ]+ \| \d/2 \| "
                   rf"[-+\d.]+, [-+\d.]+ \|",
                   r"^today, 2 seeds with both arms: reviewed mean - baseline mean",
                   r"^small, 2 seeds with both arms: reviewed mean - baseline mean")


def test_malloc_threshold(tmp_path):
    done = bench("malloc_threshold", "--images", 32, "--size", 32, "--epochs", 1, "--repeat", 1, "--thresholds",
                 131072, tmp_path=tmp_path)
    assert_figures(done, rf"^glibc's adjusting threshold \(0\) +{NUMBER} +1\.000 +{NUMBER}$",
                   rf"^128 KiB +{NUMBER} +{NUMBER} +{NUMBER}$")


def test_gan_train_speed(tmp_path):
    done = bench("gan_train_speed", "--profile", "cpu", "--size", 32, "--blocks", 1, "--batch-size", 2, "--steps", 1,
                 "--warmup", 1, "--threads", 1, tmp_path=tmp_path)
    assert_figures(done, rf"plain eager float32: +{NUMBER} pairs/s", rf"ours \(.*\): +{NUMBER} pairs/s")


def test_gan_score_speed(tmp_path):
    done = bench("gan_score_speed", "--profile", "cpu", "--size", 32, "--blocks", 1, "--n", 8, "--batch-size", 4,
                 tmp_path=tmp_path)
    assert_figures(done, rf"published \(generator, then skimage SSIM per image\): +{NUMBER} images/s",
                   rf"ours \(generator \+ SSIM on \w+\): +{NUMBER} images/s")


def test_gan_quality(tmp_path):
    out = tmp_path / "out"
    done = bench("gan_quality", "--n", 160, "--size", 32, "--epochs", 1, "--epochs-decay", 0, "--judge-epochs", 1,
                 "--blocks", 1, "--ngf", 8, "--ndf", 8, "--batch-size", 4, "--threads", 1, "--data",
                 tmp_path / "faces", "--out", out, tmp_path=tmp_path)
    assert_figures(done, rf"^judge small_cnn on true labels, 32 px: test accuracy {NUMBER}",
                   rf"^epoch +1 .*happy->sad: called sad {NUMBER} \(sources {NUMBER}\), SSIM {NUMBER}",
                   r"^1 epochs in .* s/epoch")
    assert (out / "quality.json").exists() and (out / "samples.png").exists()


def test_scale(tmp_path):
    """Its own SQLite database in its data folder (FER_DATA_DIR): migrated, imported into, scored."""
    done = bench("scale", "--n", 40, "--folds", 2, "--fit-images", 16, "--batch-size", 8, tmp_path=tmp_path)
    assert_figures(done, rf"^faces: 40 at 64 px +cache: {NUMBER} MiB",
                   rf"^import job +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +(met|MISSED)$",
                   rf"^tensor cache +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +(met|MISSED)$",
                   rf"^out-of-fold scoring \(2 x small_cnn\) +{NUMBER} ",
                   r"^scoring placement: stream ")


# --- the configured database (this run's test database) ---------------------------------------------------------

def test_import_dataset(tmp_path, transactional_db):
    done = bench("import_dataset", "--per-class", 2, "--name", "bench-smoke", tmp_path=tmp_path, database=True)
    assert_figures(done, rf"^ceiling \(read\+decode\+hash only\): +{NUMBER} images/s",
                   rf"^import job \(status succeeded\): +{NUMBER} images/s .* added 16$",
                   r"^re-import \(nothing new\): .* added 0, already present 16$")
    assert not Dataset.objects.exists()  # it deletes its dataset


def test_export(tmp_path, transactional_db):
    done = bench("export", "--rows", 50, "--batch", 20, tmp_path=tmp_path, database=True)
    assert_figures(done, r"seeded 50 images in", rf"^export via WSGI \(first\) +50 +{NUMBER}",
                   rf"^baseline: values_list\(\)\.iterator\(\) +50 +{NUMBER}", r"^export via WSGI \(again\) +50 ")
    assert not Dataset.objects.exists() and not Image.objects.exists() and not get_user_model().objects.exists()


def test_pages(tmp_path, transactional_db):
    done = bench("pages", "--rows", 100, "--parents", 2, "--chunks", 2, "--map-points", 50, "--repeat", 1,
                 tmp_path=tmp_path, database=True)
    assert_figures(done, rf"^  GET /runs/compare/ \(whole page\) +{NUMBER} s", rf"^  GET /jobs/ .* +{NUMBER} ms",
                   rf"^  baseline: np.load of the map file \(ids, xy\) +{NUMBER} ms",
                   rf"^  GET /api/datasets/<name>/map/ +{NUMBER} ms +\({NUMBER}x\), {NUMBER} MB \(12 bytes a point")
    assert not Image.objects.exists()
    assert not Dataset.objects.exists() and not Run.objects.exists() and not Job.objects.exists()


def test_review_load(tmp_path, transactional_db):
    done = bench("review_load", "--images", 40, "--reviewers", 2, "--requests", 12, "--seconds", 30, "--workers", 1,
                 "--threads", 2, tmp_path=tmp_path, database=True)
    if connection.vendor != "postgresql":  # it measures PostgreSQL only, and says so
        assert done.returncode == 1 and "needs PostgreSQL (this database is sqlite)" in done.stderr, done.stderr
        return
    assert_figures(done, rf"^HTTP, audit off all +\d+ +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}$",
                   rf"^HTTP, audit 0.05 claim, audit cards +\d+ +{NUMBER}",
                   rf"^floor: services in-process, audit 0.05 claim, ordinary cards +\d+ +{NUMBER}")
    assert not Dataset.objects.exists() and not Image.objects.exists() and not get_user_model().objects.exists()


def test_signals_table(tmp_path, transactional_db):
    done = bench("signals_table", "--images", 60, "--claims", 3, "--repeat", 1, tmp_path=tmp_path, database=True)
    if connection.vendor != "postgresql":  # it measures PostgreSQL only, and says so
        assert done.returncode == 1 and "needs PostgreSQL (this database is sqlite)" in done.stderr, done.stderr
        return
    assert_figures(done, rf"^claim candidate, none reviewed +on Image +3 +{NUMBER} +{NUMBER}$",
                   rf"^claim candidate, top 10% reviewed +joined +3 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}$",
                   rf"^export query, 60 rows +joined +1 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}$")
    assert not Dataset.objects.exists() and not Image.objects.exists() and not get_user_model().objects.exists()


def test_audit_estimates(tmp_path, transactional_db):
    out = tmp_path / "rows.json"
    done = bench("audit_estimates", "--seeds", 1, "--n", 300, "--budget", 80, "--audit-share", 0.5, "--out", out,
                 tmp_path=tmp_path, database=True)
    assert_figures(done, r"^seed 0: true 0\.\d+, audit .* covers (True|False)",
                   r"^annotators noise 0.2, 300 faces, audit share 0.5, 80 decisions a seed: the interval covered")
    (row,) = json.loads(out.read_text())
    assert 0 < row["audit_cards"] <= 80 and row["sample"] <= 80 and 0 < row["true_rate"] < 0.3
    assert row["covers"] == (row["estimate"] is not None and row["low"] <= row["true_rate"] <= row["high"])
    assert not Dataset.objects.exists() and not get_user_model().objects.exists()


def test_score_chunks(tmp_path, transactional_db, one_torch_thread):
    name, quiet = "faces", {"stdout": io.StringIO(), "stderr": io.StringIO()}
    make_synthetic_faces(tmp_path / "faces", n=160, size=32, noise=0.0, seed=0)
    call_command("import_dataset", str(tmp_path / "faces" / "labels.csv"), "--format", "csv", "--name", name,
                 "--inline", **quiet)
    call_command("train_cyclegan", "--dataset", name, "--pair", "happy", "sad", "--profile", "cpu", "--size", "32",
                 "--batch-size", "4", "--epochs", "1", "--epochs-decay", "0", "--inline", **quiet)
    done = bench("score_chunks", "--dataset", name, "--chunk-images", 100000, 16, "--repeat", 1, tmp_path=tmp_path,
                 database=True)
    assert_figures(done, r"^ +100000 +1 +2 +\d+ ", r"^ +16 +1 +\d+ +\d+ ",
                   rf"^ +16 images per chunk: +{NUMBER} images/s, {NUMBER}x$")
    refused = bench("score_chunks", "--dataset", "nothing-here", tmp_path=tmp_path, database=True)
    assert refused.returncode == 1 and "dataset 'nothing-here' does not exist" in refused.stderr, refused.stderr
