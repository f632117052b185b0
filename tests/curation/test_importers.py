"""The dataset importers as a user sees them: `manage.py import_dataset ... --inline`, its report, the Image rows."""
import io
import os
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from curation.models import Dataset, Image, Job
from tests.images import (
    image_bytes,
    write_bomb_png,
    write_bytes,
    write_imagefolder,
    write_png,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_jobs")]


def run_import(path, fmt, name, *args):
    """Run the real command in-process; return (Job.result, stdout)."""
    out = io.StringIO()
    call_command("import_dataset", str(path), "--format", fmt, "--name", name, "--inline", *args,
                 stdout=out, stderr=io.StringIO())
    job = Job.objects.filter(kind="import_dataset").first()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job.result, out.getvalue()


def bad_reasons(result):
    return {b["path"]: b["reason"] for b in result["bad"]}


def rows(name):
    """{path: (label, split)} of a dataset's Image rows."""
    return {i.path: (i.label, i.split) for i in Image.objects.filter(dataset__name=name)}


def splits(name):
    return dict(Image.objects.filter(dataset__name=name).values_list("path", "split"))


def stored_files(settings, name):
    root = settings.MEDIA_ROOT / "datasets" / name
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_every_kind_of_bad_file_is_reported_and_the_good_ones_imported(tmp_path, settings):
    settings.IMPORT_MAX_PIXELS = 50 * 50
    root = tmp_path / "faces"
    good = {"happy/a.png": 1, "happy/b.png": 1, "sad/c.png": 2, "anger/d.jpg": 6}
    for n, (rel, _) in enumerate(good.items()):
        write_bytes(root / rel, image_bytes(seed=n, format="JPEG" if rel.endswith(".jpg") else "PNG"))
    png, jpeg = image_bytes(seed=100), image_bytes(seed=101, format="JPEG")
    damaged = bytearray(image_bytes(seed=102))
    damaged[len(damaged) // 2] ^= 0xFF
    write_bytes(root / "happy/truncated.png", png[: len(png) // 2])
    write_bytes(root / "sad/truncated.jpg", jpeg[: len(jpeg) // 2])
    write_bytes(root / "happy/damaged.png", bytes(damaged))
    write_bytes(root / "sad/random.jpg", np.random.default_rng(0).bytes(4000))
    write_bytes(root / "happy/notes.txt", b"these are my notes\n")
    write_bomb_png(root / "happy/bomb.png")  # 100 M pixels in 12 KB: Pillow's own guard
    write_png(root / "sad/big.png", seed=103, size=64)  # 4096 pixels, over IMPORT_MAX_PIXELS
    write_png(root / "bored/e.png", seed=104)
    os.symlink(write_png(tmp_path / "elsewhere" / "secret.png", seed=105), root / "happy/link.png")
    PILImage.new("RGB", (32, 32), "red").save(root / "happy/anim.gif")
    expected_bad = {
        "happy/truncated.png": "corrupt",
        "sad/truncated.jpg": "corrupt",
        "happy/damaged.png": "corrupt",
        "sad/random.jpg": "not_image",
        "happy/notes.txt": "not_image",
        "happy/bomb.png": "too_many_pixels",
        "sad/big.png": "too_many_pixels",
        "bored/e.png": "unknown_label",
        "happy/link.png": "unsafe_path",
        "happy/anim.gif": "format_not_allowed",
    }

    result, out = run_import(root, "imagefolder", "mixed")

    assert bad_reasons(result) == expected_bad
    assert result["bad_counts"] == dict(Counter(expected_bad.values()))
    assert result["bad_count"] == len(expected_bad)
    assert result["files_found"] == len(good) + len(expected_bad)
    assert result["added"] == len(good)
    assert {p: label for p, (label, _) in rows("mixed").items()} == good
    assert stored_files(settings, "mixed") == set(good)  # nothing bad was copied, the symlink target least of all
    for path, reason in expected_bad.items():
        assert f"BAD {path}: {reason}: " in out
    assert "bad files:          10" in out


def test_csv_manifest_paths_labels_and_splits(tmp_path):
    root = tmp_path / "ds"
    for n, rel in enumerate(["img/a.png", "img/b.png", "img/c.png", "img/d.png", "img/e.png"]):
        write_png(root / rel, seed=n)
    outside = write_png(tmp_path / "outside.png", seed=9)
    lines = [
        "path,label,split",
        "img/a.png,Happiness,train",
        "img/b.png,angry,val",
        "img/c.png,sad,test",
        "../outside.png,happy,train",
        f"{outside},happy,train",
        "img/missing.png,sad,train",
        "img/d.png,bored,train",
        "img/e.png,happy,holdout",
    ]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")

    result, out = run_import(root / "labels.csv", "csv", "manifest")

    assert bad_reasons(result) == {
        "../outside.png": "unsafe_path",
        str(outside): "unsafe_path",
        "img/missing.png": "missing_file",
        "img/d.png": "unknown_label",
        "img/e.png": "unknown_split",
    }
    assert rows("manifest") == {"img/a.png": (1, "train"), "img/b.png": (6, "val"), "img/c.png": (2, "test")}
    assert result["carved"] == {"test": False, "val": False}
    assert "BAD ../outside.png: unsafe_path" in out


def _affectnet_item(root, part, image_id, expression, seed):
    write_bytes(root / part / "images" / f"{image_id}.jpg", image_bytes(seed=seed, format="JPEG"))
    if expression is not None:
        ann = root / part / "annotations" / f"{image_id}_exp.npy"
        ann.parent.mkdir(parents=True, exist_ok=True)
        np.save(ann, expression)


def test_affectnet_layout(tmp_path):
    root = tmp_path / "affectnet"
    for i in range(10):
        _affectnet_item(root, "train_set", f"s{i}", np.array("3"), seed=i)  # stored as text, as AffectNet does
        _affectnet_item(root, "train_set", f"n{i}", np.array(6), seed=100 + i)  # stored as a number
    for image_id, code, seed in (("none", 8, 200), ("uncertain", np.array("9"), 201), ("noface", 10, 202)):
        _affectnet_item(root, "train_set", image_id, np.array(code), seed=seed)
    _affectnet_item(root, "train_set", "orphan", None, seed=203)
    _affectnet_item(root, "val_set", "v0", np.array("1"), seed=300)
    _affectnet_item(root, "val_set", "v1", np.array(2), seed=301)

    result, _ = run_import(root, "affectnet", "affectnet")

    assert result["skipped_not_emotion"] == {"none": 1, "uncertain": 1, "no_face": 1}
    assert bad_reasons(result) == {"train_set/images/orphan.jpg": "missing_annotation"}
    assert result["files_found"] == 26 and result["added"] == 22
    got = rows("affectnet")
    assert got["val_set/images/v0.jpg"] == (1, "test") and got["val_set/images/v1.jpg"] == (2, "test")
    train_set = {p: v for p, v in got.items() if p.startswith("train_set/")}
    assert {p: label for p, (label, _) in train_set.items()} == {
        **{f"train_set/images/s{i}.jpg": 3 for i in range(10)},
        **{f"train_set/images/n{i}.jpg": 6 for i in range(10)},
    }
    assert Counter(v for v in train_set.values()) == {(3, "train"): 9, (3, "val"): 1, (6, "train"): 9, (6, "val"): 1}
    assert result["carved"] == {"test": False, "val": True}


def test_fer2013_csv(tmp_path, settings):
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, 48 * 48) for _ in range(7)]
    rows_in = [("0", "Training"), ("3", "Training"), ("6", "Training"), ("3", "PublicTest"), ("0", "PublicTest"),
               ("6", "PrivateTest"), ("4", "PrivateTest")]
    lines = ["emotion,pixels,Usage"] + [f"{e},{' '.join(map(str, px))},{u}" for (e, u), px in zip(rows_in, pixels)]
    lines.append(f"2,{' '.join(['7'] * 100)},Training")
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")

    result, _ = run_import(tmp_path / "fer2013.csv", "fer2013", "fer")

    assert bad_reasons(result) == {"fer2013/000008.png": "corrupt"}
    assert rows("fer") == {
        "fer2013/000001.png": (6, "train"),  # FER 0 angry -> anger
        "fer2013/000002.png": (1, "train"),  # FER 3 happy
        "fer2013/000003.png": (0, "train"),  # FER 6 neutral
        "fer2013/000004.png": (1, "val"),
        "fer2013/000005.png": (6, "val"),
        "fer2013/000006.png": (0, "test"),
        "fer2013/000007.png": (2, "test"),  # FER 4 sad
    }
    for number, image in enumerate(Image.objects.filter(dataset__name="fer").order_by("path"), start=1):
        assert (image.width, image.height) == (48, 48)
        with PILImage.open(settings.MEDIA_ROOT / image.file) as stored:
            assert np.array_equal(np.asarray(stored), pixels[number - 1].reshape(48, 48))


def test_reimport_adds_nothing_and_keeps_splits(tmp_path):
    root = tmp_path / "faces"
    n = write_imagefolder(root, {"happy": 12, "sad": 12})
    (root / "happy" / "notes.txt").write_text("not an image")
    first, _ = run_import(root, "imagefolder", "again")
    before = splits("again")
    assert first["added"] == n and set(before.values()) == {"train", "val", "test"}

    second, _ = run_import(root, "imagefolder", "again")

    assert second["added"] == 0
    assert second["already_present"] == n
    assert bad_reasons(second) == {"happy/notes.txt": "not_image"}
    assert Image.objects.count() == n
    assert splits("again") == before


def test_carved_splits_are_stratified_and_seeded(tmp_path):
    root = tmp_path / "faces"
    write_imagefolder(root, {"happy": 40, "sad": 40, "anger": 40})

    result, _ = run_import(root, "imagefolder", "seed0")

    assert result["carved"] == {"test": True, "val": True}
    per_label = Counter((label, split) for label, split in rows("seed0").values())
    for label in (1, 2, 6):
        assert abs(per_label[(label, "test")] - 0.15 * 40) <= 1
        assert abs(per_label[(label, "val")] - 0.10 * 40) <= 1
    run_import(root, "imagefolder", "seed0-again")
    assert splits("seed0-again") == splits("seed0")
    run_import(root, "imagefolder", "seed1", "--seed", "1")
    assert splits("seed1").keys() == splits("seed0").keys()
    assert splits("seed1") != splits("seed0")


def test_duplicate_content_is_reported_naming_the_first(tmp_path):
    root = tmp_path / "faces"
    write_png(root / "happy" / "a.png", seed=1)
    write_png(root / "happy" / "b.png", seed=2)
    write_bytes(root / "sad" / "copy.png", (root / "happy" / "a.png").read_bytes())

    result, _ = run_import(root, "imagefolder", "dups")

    assert result["bad"] == [{"path": "sad/copy.png", "reason": "duplicate", "detail": "same content as happy/a.png"}]
    assert rows("dups").keys() == {"happy/a.png", "happy/b.png"}


@pytest.mark.parametrize(
    "fmt, source, message",
    [
        ("affectnet", "folder", "not the AffectNet layout"),
        ("fer2013", "folder", "fer2013.csv"),
        ("csv", "folder", "is not a file"),
        ("csv", "fer_csv", "lacks column(s) label, path"),
        ("imagefolder", "fer_csv", "is not a folder"),
    ],
)
def test_wrong_format_for_the_layout_fails_clearly_and_writes_nothing(tmp_path, settings, fmt, source, message):
    write_imagefolder(tmp_path / "folder", {"happy": 2})
    (tmp_path / "fer_csv.csv").write_text("emotion,pixels,Usage\n")
    path = tmp_path / "folder" if source == "folder" else tmp_path / "fer_csv.csv"

    with pytest.raises(CommandError, match="failed") as err:
        run_import(path, fmt, "wrong")

    assert message in str(err.value)
    assert not Dataset.objects.exists() and not Image.objects.exists()
    assert not (settings.MEDIA_ROOT / "datasets").exists()


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(CommandError, match="FER_IMPORT_ROOTS") as err:
        run_import(missing, "imagefolder", "nowhere")
    assert str(missing) in str(err.value)
    assert not Dataset.objects.exists() and not Job.objects.exists()


def test_a_failed_import_does_not_claim_the_name(tmp_path):
    n = write_imagefolder(tmp_path / "faces", {"happy": 3})
    with pytest.raises(CommandError):
        run_import(tmp_path / "faces", "affectnet", "faces")

    result, _ = run_import(tmp_path / "faces", "imagefolder", "faces")

    assert result["added"] == n


def test_spreadsheet_manifest_with_bom_and_backslashes_imports(tmp_path):
    root = tmp_path / "m"
    write_png(root / "imgs" / "happy" / "a.png", seed=1)
    write_png(root / "imgs" / "sad" / "b.png", seed=2)
    # Excel writes a byte-order mark; Windows tools write backslashes.
    (root / "labels.csv").write_text("path,label\nimgs\\happy\\a.png,happy\nimgs/sad/b.png,sad\n", encoding="utf-8-sig")
    result, _ = run_import(root / "labels.csv", "csv", "excel")
    assert result["bad"] == []
    assert rows("excel").keys() == {"imgs/happy/a.png", "imgs/sad/b.png"}


def test_reimport_with_a_changed_label_keeps_the_stored_label_and_says_so(tmp_path):
    root = tmp_path / "m"
    write_png(root / "a.png", seed=1)
    (root / "labels.csv").write_text("path,label,split\na.png,happy,train\n")
    run_import(root / "labels.csv", "csv", "relab")
    (root / "labels.csv").write_text("path,label,split\na.png,contempt,train\n")
    result, out = run_import(root / "labels.csv", "csv", "relab")
    assert result["already_present"] == 1 and result["already_present_other_label"] == 1
    assert rows("relab") == {"a.png": (1, "train")}
    assert "now carry another label" in out
