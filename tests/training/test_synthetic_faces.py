"""The synthetic face dataset as its users see it: the files, the noisy labels against the truth, the splits, the
preview, and the labels.csv imported by the real importer."""
import csv
import io
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image as PILImage

from curation.models import Image, Job
from tests.conftest import REPO
from training.labels import CLASSES, CODE
from training.synthetic_faces import (
    DUPLICATE_KINDS,
    PARTNER,
    PREVIEW_COLUMNS,
    PREVIEW_LABEL_WIDTH,
    make_synthetic_faces,
)

N, SIZE, NOISE = 400, 32, 0.25

pytestmark = pytest.mark.usefixtures("inline_jobs")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    summary = make_synthetic_faces(out, n=N, size=SIZE, noise=NOISE, seed=7, preview=True)
    labels = {r["path"]: r for r in _read(out / "labels.csv")}
    truth = {r["path"]: r for r in _read(out / "truth.csv")}
    return out, summary, labels, truth


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes_with_any_number_of_processes_and_another_seed_differs(tmp_path):
    make_synthetic_faces(tmp_path / "a", n=40, size=32, seed=3, preview=True)
    make_synthetic_faces(tmp_path / "b", n=40, size=32, seed=3, preview=True, workers=2, chunk=7)
    make_synthetic_faces(tmp_path / "c", n=40, size=32, seed=4, preview=True)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 40 + 3 and a == b
    assert a.keys() == c.keys()
    assert sum(a[p] != c[p] for p in a if p.startswith("images/")) == 40
    assert a["labels.csv"] != c["labels.csv"]


def test_files_columns_and_labels(dataset):
    out, summary, labels, truth = dataset
    assert (out / "labels.csv").read_text().splitlines()[0] == "path,label,split"
    assert (out / "truth.csv").read_text().splitlines()[0] == "path,true_label,intensity,noisy,duplicate_group,outlier,duplicate_kind"
    assert {(t["duplicate_group"], t["outlier"]) for t in truth.values()} == {("", "0")}  # off by default
    assert labels.keys() == truth.keys() and len(labels) == N
    for path, row in labels.items():
        with PILImage.open(out / path) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (SIZE, SIZE))
        assert row["label"] in CLASSES and truth[path]["true_label"] in CLASSES
        assert row["split"] in ("train", "val", "test")
    assert summary["per_class"] == {c: N // 8 for c in CLASSES}  # uniform prior by default
    intensity = {c: [float(t["intensity"]) for t in truth.values() if t["true_label"] == c] for c in CLASSES}
    assert set(intensity["neutral"]) == {0.0}
    assert all(0 < x <= 1 for c in CLASSES[1:] for x in intensity[c])


def test_noise_is_the_asked_share_of_train_and_val_and_mostly_the_confusable_class(dataset):
    out, summary, labels, truth = dataset
    trainval = [p for p in labels if labels[p]["split"] != "test"]
    wrong = [p for p in trainval if labels[p]["label"] != truth[p]["true_label"]]
    assert len(wrong) == round(NOISE * len(trainval)) == summary["noisy"]
    to_partner = [p for p in wrong if labels[p]["label"] == PARTNER[truth[p]["true_label"]]]
    assert 0.55 <= len(to_partner) / len(wrong) <= 0.85
    assert len({(truth[p]["true_label"], labels[p]["label"]) for p in wrong}) > 10  # the rest spreads out


def test_truth_records_exactly_which_labels_are_wrong(dataset):
    out, summary, labels, truth = dataset
    for path, t in truth.items():
        assert t["noisy"] in ("0", "1")
        assert (labels[path]["label"] != t["true_label"]) == (t["noisy"] == "1")


def test_the_test_split_has_no_noise(dataset):
    out, summary, labels, truth = dataset
    test = [p for p in labels if labels[p]["split"] == "test"]
    assert len(test) == summary["per_split"]["test"] > 0
    assert all(labels[p]["label"] == truth[p]["true_label"] and truth[p]["noisy"] == "0" for p in test)


def test_splits_are_stratified_by_true_class(dataset):
    out, summary, labels, truth = dataset
    counts = Counter((truth[p]["true_label"], labels[p]["split"]) for p in labels)
    for c in CLASSES:
        assert abs(counts[(c, "test")] - 0.15 * N / 8) <= 1
        assert abs(counts[(c, "val")] - 0.10 * N / 8) <= 1


def test_preview_has_a_labelled_row_of_twelve_faces_per_true_emotion(dataset):
    out, summary, labels, truth = dataset
    with PILImage.open(out / "preview.png") as im:
        sheet = np.asarray(im.convert("RGB"))
    assert sheet.shape == (8 * SIZE, PREVIEW_LABEL_WIDTH + PREVIEW_COLUMNS * SIZE, 3)
    faces = {}
    for path, t in truth.items():
        with PILImage.open(out / path) as im:
            faces.setdefault(t["true_label"], []).append(np.asarray(im))
    for row, emotion in enumerate(CLASSES):
        assert (sheet[row * SIZE : (row + 1) * SIZE, :PREVIEW_LABEL_WIDTH] < 128).any()  # the row's name
        for column in range(PREVIEW_COLUMNS):
            x = PREVIEW_LABEL_WIDTH + column * SIZE
            cell = sheet[row * SIZE : (row + 1) * SIZE, x : x + SIZE]
            assert any(np.array_equal(cell, f) for f in faces[emotion]), (emotion, column)


def test_difficulty_moves_faces_towards_neutral(tmp_path):
    easy = make_synthetic_faces(tmp_path / "easy", n=80, size=32, difficulty=0.0)
    hard = make_synthetic_faces(tmp_path / "hard", n=80, size=32, difficulty=1.0)
    assert easy["mean_intensity"] > hard["mean_intensity"] + 0.3


def test_the_generator_imports_neither_django_nor_torch():
    code = ("import sys, training.synthetic_faces; "
            "print(sorted(m for m in ('django', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_command_prints_the_summary(tmp_path):
    out = io.StringIO()
    call_command("make_synthetic_faces", str(tmp_path / "ds"), "--n", "24", "--size", "32", "--noise", "0.5",
                 "--seed", "1", "--preview", stdout=out)
    text = out.getvalue()
    assert "wrote 24 faces (32 px)" in text and "the test split has none" in text
    assert len(_read(tmp_path / "ds" / "labels.csv")) == 24 and (tmp_path / "ds" / "preview.png").is_file()


@pytest.mark.django_db
def test_labels_csv_imports_with_its_splits_and_noisy_labels(dataset):
    out, summary, labels, truth = dataset
    call_command("import_dataset", str(out / "labels.csv"), "--format", "csv", "--name", "synthetic", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    job = Job.objects.get(kind="import_dataset")
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["added"] == N and job.result["bad_count"] == 0
    assert job.result["carved"] == {"test": False, "val": False}
    rows = {i.path: (i.label, i.split) for i in Image.objects.filter(dataset__name="synthetic")}
    assert rows == {p: (CODE[r["label"]], r["split"]) for p, r in labels.items()}


def test_near_duplicates_and_non_faces_are_in_truth_and_leave_the_other_faces_alone(tmp_path):
    plain = tmp_path / "plain"
    make_synthetic_faces(plain, n=200, size=32, seed=5, noise=0.2)
    out = tmp_path / "trouble"
    summary = make_synthetic_faces(out, n=200, size=32, seed=5, noise=0.2, duplicates=0.15, nonfaces=0.05)
    truth = {r["path"]: r for r in _read(out / "truth.csv")}
    labels = {r["path"]: r for r in _read(out / "labels.csv")}
    assert list(truth.values())[0].keys() == {"path", "true_label", "intensity", "noisy", "duplicate_group", "outlier",
                                              "duplicate_kind"}
    pixels = {p: np.asarray(PILImage.open(out / p), dtype=float) for p in truth}
    groups = {}
    for path, t in truth.items():
        if t["duplicate_group"]:
            groups.setdefault(t["duplicate_group"], []).append(path)
    copies = sum(len(g) - 1 for g in groups.values())
    assert copies == summary["duplicates"] == 30 and len(groups) == summary["duplicate_groups"]
    # The group is named by its original's index; each copy says how it was made, carries the same true label and
    # other bytes. A mirror is the original flipped; a crop is its middle; the other copies' pixels are much closer
    # to the original's than to any other face's.
    kinds = {}
    for name, paths in groups.items():
        original = f"images/{int(name):05d}.png"
        assert original in paths and len({truth[p]["true_label"] for p in paths}) == 1
        assert truth[original]["duplicate_kind"] == ""
        others = [p for p in truth if p not in paths and truth[p]["outlier"] == "0"]
        for copy in set(paths) - {original}:
            kind = truth[copy]["duplicate_kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
            assert (out / copy).read_bytes() != (out / original).read_bytes()
            if kind == "mirror":
                np.testing.assert_array_equal(pixels[copy], pixels[original][:, ::-1])
                continue
            reference = pixels[original]
            if kind == "crop":  # against the original's middle, stretched back: closer than any other face's
                middle = PILImage.open(out / original).crop((2, 2, 30, 30)).resize((32, 32), PILImage.BICUBIC)
                reference = np.asarray(middle, dtype=float)
            near = np.abs(pixels[copy] - reference).mean()
            assert near < min(np.abs(pixels[copy] - pixels[p]).mean() for p in others), (copy, original, kind)
    assert kinds == {k: v for k, v in summary["duplicate_kinds"].items() if v} and set(kinds) == set(DUPLICATE_KINDS)
    # Some copies share their original's split and some do not, train/test among them.
    split_sets = [{labels[p]["split"] for p in paths} for paths in groups.values()]
    assert any(len(s) == 1 for s in split_sets) and any({"train", "test"} <= s for s in split_sets)
    assert summary["test_leaks"] > 0 and summary["cross_split_duplicates"] > 0
    # Non-faces: outlier 1, never in a group, never noisy; their true label is the label they were given.
    outliers = [p for p, t in truth.items() if t["outlier"] == "1"]
    assert len(outliers) == summary["nonfaces"] == 10
    assert all(truth[p]["duplicate_group"] == "" and truth[p]["noisy"] == "0"
               and truth[p]["true_label"] == labels[p]["label"] for p in outliers)
    # The test split still has no wrong labels, and every other face is byte for byte the one made without trouble.
    assert all(labels[p]["label"] == truth[p]["true_label"] for p in labels if labels[p]["split"] == "test")
    for path, t in truth.items():
        alone = t["outlier"] == "0" and (not t["duplicate_group"] or path == f"images/{int(t['duplicate_group']):05d}.png")
        if alone:
            assert (out / path).read_bytes() == (plain / path).read_bytes(), path


def test_trouble_shares_are_checked(tmp_path):
    with pytest.raises(ValueError, match="at least one original face"):
        make_synthetic_faces(tmp_path, n=10, size=32, duplicates=0.6, nonfaces=0.4)
    with pytest.raises(ValueError, match="duplicates=-0.1"):
        make_synthetic_faces(tmp_path, n=10, size=32, duplicates=-0.1)
    with pytest.raises(ValueError, match="unknown duplicate kind 'rotate' .known: recapture, jpeg, blur, mirror, crop"):
        make_synthetic_faces(tmp_path / "rotate", n=10, size=32, duplicates=0.2, duplicate_kinds=["mirror", "rotate"])
    assert not (tmp_path / "rotate").exists()  # refused before anything is written


def test_command_takes_duplicates_and_nonfaces(tmp_path):
    out = io.StringIO()
    call_command("make_synthetic_faces", str(tmp_path / "ds"), "--n", "40", "--size", "32", "--duplicates", "0.2",
                 "--nonfaces", "0.1", stdout=out)
    truth = _read(tmp_path / "ds" / "truth.csv")
    assert sum(t["outlier"] == "1" for t in truth) == 4 and "near-duplicates: 8 copies" in out.getvalue()
    call_command("make_synthetic_faces", str(tmp_path / "mirrors"), "--n", "40", "--size", "32", "--duplicates", "0.2",
                 "--duplicate-kinds", "mirror", stdout=out)
    assert {t["duplicate_kind"] for t in _read(tmp_path / "mirrors" / "truth.csv")} == {"", "mirror"}
    assert "copies made by: mirror 8" in out.getvalue()
    with pytest.raises(CommandError, match="unknown duplicate kind 'flip'"):
        call_command("make_synthetic_faces", str(tmp_path / "bad"), "--n", "40", "--duplicates", "0.2",
                     "--duplicate-kinds", "mirror,flip", stdout=io.StringIO())
