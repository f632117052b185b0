"""The synthetic face dataset as its users see it: the files, the noisy labels against the truth, the splits, the
preview, and the labels.csv imported by the real importer."""
import csv
import hashlib
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
    ANNOTATORS,
    DUPLICATE_KINDS,
    PARTNER,
    PREVIEW_COLUMNS,
    PREVIEW_LABEL_WIDTH,
    make_synthetic_faces,
    plurality,
    read_expression,
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


# ---------------------------------------------------------------------------------------------------------------
# Noise models: uniform (the original) and annotators.

# Made by the code before the annotator model existed (commit 902fa1f): n=60, size=24, seed=11, noise=0.3,
# duplicates=0.1, nonfaces=0.05. The PNGs are compared by their pixels (their bytes also depend on zlib's build).
UNIFORM_BEFORE = {"labels.csv": "fe33d2ccc2c9a6346dac697ac4c8ef48e46606fc89f14e189361cd45bee60dc1",
                  "truth.csv": "771d79c29c92e38fe545cf4dfd809acbbd1eab26f78b7775d3f2194dc83696f1",
                  "pixels": "c094cce10e02857031248f3038b262314bcc1b72e984737e0a2eac999d1bfa64"}


def _digest(root):
    # truth.csv without the duplicate_kind column, which came after these hashes were made.
    truth = [row.split(",") for row in (root / "truth.csv").read_text().splitlines()]
    kind = truth[0].index("duplicate_kind")
    before = "".join(",".join(cells[:kind] + cells[kind + 1:]) + "\n" for cells in truth)
    found = {"labels.csv": hashlib.sha256((root / "labels.csv").read_bytes()).hexdigest(),
             "truth.csv": hashlib.sha256(before.encode()).hexdigest()}
    pixels = hashlib.sha256()
    for path in sorted((root / "images").iterdir()):
        pixels.update(path.name.encode())
        pixels.update(np.asarray(PILImage.open(path)).tobytes())
    return {**found, "pixels": pixels.hexdigest()}


def test_the_uniform_model_makes_what_the_generator_made_before_there_were_two(tmp_path):
    # Copies made the one way there was then (re-captured); the other kinds came later.
    same = dict(n=60, size=24, seed=11, noise=0.3, duplicates=0.1, nonfaces=0.05, duplicate_kinds=["recapture"])
    make_synthetic_faces(tmp_path / "default", **same)
    make_synthetic_faces(tmp_path / "named", noise_model="uniform", **same)
    assert _digest(tmp_path / "default") == _digest(tmp_path / "named") == UNIFORM_BEFORE


@pytest.fixture(scope="module")
def both_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    made = {}
    for model in ("uniform", "annotators"):
        summary = make_synthetic_faces(root / model, n=800, size=24, noise=0.2, seed=2, difficulty=0.3,
                                       noise_model=model)
        made[model] = (root / model, summary, {r["path"]: r for r in _read(root / model / "labels.csv")},
                       {r["path"]: r for r in _read(root / model / "truth.csv")})
    return made


@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_noise_is_the_share_of_wrong_train_and_val_labels_under_both_models(tmp_path, noise):
    for model in ("uniform", "annotators"):
        summary = make_synthetic_faces(tmp_path / model, n=300, size=16, noise=noise, seed=4, noise_model=model)
        labels, truth = _read(tmp_path / model / "labels.csv"), _read(tmp_path / model / "truth.csv")
        trainval = [(l, t) for l, t in zip(labels, truth) if l["split"] != "test"]
        wrong = sum(l["label"] != t["true_label"] for l, t in trainval)
        assert wrong == round(noise * len(trainval)) == summary["noisy"], model
        assert all(l["label"] == t["true_label"] for l, t in zip(labels, truth) if l["split"] == "test"), model


def test_both_models_label_the_same_faces(both_models):
    (u_out, _, u_labels, u_truth), (a_out, _, a_labels, a_truth) = both_models["uniform"], both_models["annotators"]
    assert {p: (t["true_label"], t["intensity"]) for p, t in u_truth.items()} == {
        p: (t["true_label"], t["intensity"]) for p, t in a_truth.items()}
    assert {p: r["split"] for p, r in u_labels.items()} == {p: r["split"] for p, r in a_labels.items()}
    assert all((u_out / p).read_bytes() == (a_out / p).read_bytes() for p in u_labels)
    assert sum(u_labels[p]["label"] != a_labels[p]["label"] for p in u_labels) > 100  # other wrong labels


def test_annotators_err_on_faces_that_are_hard_to_read_toward_what_they_resemble(both_models):
    out, summary, labels, truth = both_models["annotators"]
    assert list(truth.values())[0].keys() == {"path", "true_label", "intensity", "noisy", "duplicate_group", "outlier",
                                              "duplicate_kind", "ambiguity", "agreement", "annotator_labels"}
    trainval = [p for p in labels if labels[p]["split"] != "test"]
    wrong = [p for p in trainval if truth[p]["noisy"] == "1"]
    right = [p for p in trainval if truth[p]["noisy"] == "0"]
    # Every label is its annotators' plurality, and the agreement is the share of them who named it.
    for path in labels:
        votes = truth[path]["annotator_labels"].split(";")
        assert len(votes) == ANNOTATORS
        assert CLASSES[plurality(np.array([[CODE[v] for v in votes]]))[0]] == labels[path]["label"]
        assert float(truth[path]["agreement"]) == pytest.approx(votes.count(labels[path]["label"]) / len(votes),
                                                                abs=1e-3)

    def mean(paths, column):
        return np.mean([float(truth[p][column]) for p in paths])

    # Wrong labels fall on the ambiguous faces and, among emotions, on the weak ones; uniform noise does not care.
    assert mean(wrong, "ambiguity") > mean(right, "ambiguity") + 0.15
    emotional = [p for p in trainval if truth[p]["true_label"] != "neutral"]
    weak = sorted(emotional, key=lambda p: float(truth[p]["intensity"]))[: len(emotional) // 3]
    strong = sorted(emotional, key=lambda p: float(truth[p]["intensity"]))[-len(emotional) // 3:]
    rate = {name: np.mean([truth[p]["noisy"] == "1" for p in part]) for name, part in (("weak", weak),
                                                                                       ("strong", strong))}
    assert rate["weak"] > 2 * rate["strong"]
    _, _, u_labels, u_truth = both_models["uniform"]
    u_weak = np.mean([u_truth[p]["noisy"] == "1" for p in weak])
    u_strong = np.mean([u_truth[p]["noisy"] == "1" for p in strong])
    assert u_weak < 2 * u_strong
    # Neutral is misread as the emotion a resting face suggests (sad, contempt, happy, anger), rarely as the
    # emotions that open the mouth; and weak emotions are read as neutral.
    neutral = [labels[p]["label"] for p in wrong if truth[p]["true_label"] == "neutral"]
    assert sum(c in ("sad", "contempt", "happy", "anger") for c in neutral) > 2 * sum(
        c in ("surprise", "fear", "disgust") for c in neutral)
    assert Counter(labels[p]["label"] for p in wrong).most_common(1)[0][0] == "neutral"
    # The published figures sit within the model's range at this noise (one annotator right on 65 % of FER2013's
    # faces; two AffectNet annotators agree on 60 %).
    assert 0.55 <= summary["one_annotator_accuracy"] <= 0.85 and 0.45 <= summary["two_annotator_agreement"] <= 0.8


def test_a_wrong_label_names_the_class_the_face_reads_as(both_models):
    """read_expression with no perception error: the class a face's action units resemble most. Under the
    annotator model a wrong label names that class (when it is not the true one) far more often than uniform noise
    does."""
    from training.synthetic_faces import expressions, knobs

    shares = {}
    for model, (out, summary, labels, truth) in both_models.items():
        paths = sorted(labels)
        true = np.array([CODE[truth[p]["true_label"]] for p in paths])
        reads = read_expression(expressions(2, true, knobs(0.3))[0])
        wrong = [k for k, p in enumerate(paths) if truth[p]["noisy"] == "1" and reads[k] != true[k]]
        shares[model] = np.mean([CODE[labels[paths[k]]["label"]] == reads[k] for k in wrong])
    assert shares["annotators"] > 0.4 and shares["annotators"] > shares["uniform"] + 0.25  # 0.52 and 0.15


def test_an_unknown_noise_model_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match="noise model must be one of uniform, annotators, not 'crowd'"):
        make_synthetic_faces(tmp_path / "x", n=10, size=16, noise_model="crowd")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not 'crowd'"):
        call_command("make_synthetic_faces", str(tmp_path / "y"), "--n", "10", "--size", "16",
                     "--noise-model", "crowd", stdout=io.StringIO())
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_command_reports_the_annotators(tmp_path):
    out = io.StringIO()
    call_command("make_synthetic_faces", str(tmp_path / "ds"), "--n", "200", "--size", "16", "--noise-model",
                 "annotators", "--annotators", "5", stdout=out)
    assert "annotators: 5 a face" in out.getvalue() and "two annotators agree on" in out.getvalue()
    assert {len(t["annotator_labels"].split(";")) for t in _read(tmp_path / "ds" / "truth.csv")} == {5}
