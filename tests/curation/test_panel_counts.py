"""The dataset page's leak and known-truth panels read stored figures (DatasetPanels), refreshed by whatever changes
them: the stored figures equal a fresh walk after imports, find_duplicates runs, decisions, undos and both ways of
ending a leak, and the page reads them with the same queries whatever the dataset's size."""
import csv
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.duplicates.leaks import (dataset_leaks, exclude_leaked_test_images, exclude_leaking_copies,
                                       leaks_refresh)
from curation.models import DatasetPanels, DuplicateMember, Image, LabelChange, TruthLabel
from curation.review.services import image_decide
from curation.selectors import dataset_get
from curation.services import image_label_change
from curation.truth import known_truth, truth_path, truth_register
from tests.factories import DatasetFactory, ImageFactory, UserFactory
from training.labels import CODE
from training.synthetic_faces import make_synthetic_faces

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_jobs")]


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"  # truth files live under DATA_DIR
    return settings.DATA_DIR


def _import(csv_path, name):
    call_command("import_dataset", str(csv_path), "--format", "csv", "--name", name, "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    return dataset_get(name=name)


def _find(name):
    call_command("find_duplicates", "--dataset", name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _truth_walk(ds, truth):
    """The known-truth counts by the walk the panel used to make at each view: every image against the file."""
    counts = dict.fromkeys(("known", "wrong", "reviewed", "fixed_relabelled", "fixed_excluded", "kept_wrong",
                            "relabelled_wrong", "excluded_right"), 0)
    for path, original, label, status in ds.images.values_list("path", "original_label", "label", "status"):
        if path not in truth:
            continue
        true = truth[path]
        counts["known"] += 1
        counts["wrong"] += true != original
        if status == Image.Status.UNREVIEWED:
            continue
        counts["reviewed"] += 1
        if status == Image.Status.EXCLUDED:
            counts["fixed_excluded" if true != original else "excluded_right"] += 1
        elif label == true:
            counts["fixed_relabelled"] += true != original
        elif status == Image.Status.CONFIRMED:
            counts["kept_wrong"] += 1
        else:
            counts["relabelled_wrong"] += 1
    return counts


def _check(ds, truth):
    """The stored figures equal a fresh walk: the truth counts the old per-view walk's, and both panels what they
    read once the stored row is dropped and computed again from every image."""
    stored_leaks, stored_truth = dataset_leaks(ds), known_truth(dataset=ds)
    walk = _truth_walk(ds, truth)
    assert (stored_truth.wrong_total, stored_truth.reviewed, stored_truth.fixed_relabelled,
            stored_truth.fixed_excluded, stored_truth.kept_wrong, stored_truth.relabelled_wrong,
            stored_truth.excluded_right) == (walk["wrong"], walk["reviewed"], walk["fixed_relabelled"],
                                             walk["fixed_excluded"], walk["kept_wrong"], walk["relabelled_wrong"],
                                             walk["excluded_right"])
    assert stored_truth.base_rate == pytest.approx(walk["wrong"] / walk["known"])
    DatasetPanels.objects.filter(dataset=ds).delete()
    assert dataset_leaks(ds) == stored_leaks
    assert known_truth(dataset=ds) == stored_truth
    return stored_leaks, stored_truth


def _decide(user, image, action, label=None):
    image.refresh_from_db()
    return image_decide(user=user, image_id=image.pk, action=action, version=image.version, label=label)


def _undo(change):
    image = Image.objects.get(pk=change.image_id)
    image_label_change(image_id=image.pk, action=LabelChange.Action.UNDO, expected_version=image.version,
                       undo_of=change)


def test_the_stored_panels_equal_a_fresh_walk_after_every_kind_of_change(tmp_path, data_dir):
    out = tmp_path / "faces"
    make_synthetic_faces(out, n=160, size=48, seed=3, duplicates=0.25)
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(out / "truth.csv", newline="") as fh:
        truth_rows = list(csv.DictReader(fh))
    first, later = rows[:100], rows[100:]
    ds = _import(_write_csv(out / "first.csv", ["path", "label", "split"], first), "panels")
    # The truth of the first import's images only: the later import's images have none (the panel counts the known).
    firsts = {r["path"] for r in first}
    truth_register(dataset=ds, source=_write_csv(tmp_path / "truth.csv", ["path", "true_label"],
                                                 [r for r in truth_rows if r["path"] in firsts]))
    truth = {r["path"]: CODE[r["true_label"]] for r in truth_rows if r["path"] in firsts}
    _check(ds, truth)

    _find("panels")
    leaks, known = _check(ds, truth)
    assert leaks["groups"] >= 5 and leaks["leaked_test_images"] >= 1 and known.wrong_total >= 5

    # Decisions of every kind, on grouped images of each split and on others, and undos of them.
    user = UserFactory()
    grouped = list(Image.objects.filter(dataset=ds, duplicate_member__isnull=False).order_by("id"))
    plain = list(Image.objects.filter(dataset=ds, duplicate_member__isnull=True).order_by("id"))
    wrong = [i for i in plain if truth[i.path] != i.original_label]
    right = [i for i in plain if truth[i.path] == i.original_label]
    changes = [_decide(user, wrong[0], "relabel", truth[wrong[0].path]).change,  # fixed by a relabel
               _decide(user, wrong[1], "exclude").change,  # fixed by an exclusion
               _decide(user, wrong[2], "confirm").change,  # a wrong label kept
               _decide(user, right[0], "exclude").change,  # a right label excluded
               _decide(user, right[1], "relabel", (right[1].original_label + 1) % 8).change]  # made wrong
    test_grouped = [i for i in grouped if i.split == "test"]
    train_grouped = [i for i in grouped if i.split != "test"]
    changes.append(_decide(user, test_grouped[0], "exclude").change)
    changes.append(_decide(user, train_grouped[0], "exclude").change)
    _decide(user, train_grouped[1], "relabel", (train_grouped[1].label + 2) % 8)
    _check(ds, truth)
    _undo(changes[1])  # the fixing exclusion taken back
    _undo(changes[5])  # the grouped test image back in the test split
    _decide(user, wrong[0], "relabel", (truth[wrong[0].path] + 3) % 8)  # a fix turned into a mistake
    _check(ds, truth)

    # Ending leaks both ways.
    exclude_leaking_copies(dataset=ds)
    _check(ds, truth)
    _undo(LabelChange.objects.filter(image__dataset=ds, action="exclude").order_by("-id").first())
    exclude_leaked_test_images(dataset=ds)
    leaks, _ = _check(ds, truth)
    assert leaks["leaked_test_images"] == 0

    # More images, some in test (a new test split hash) with copies of earlier ones, then a new search.
    _import(_write_csv(out / "later.csv", ["path", "label", "split"], later), "panels")
    assert Image.objects.filter(dataset=ds).count() == 160
    _check(ds, truth)
    _find("panels")
    leaks, _ = _check(ds, truth)
    assert leaks["images"] > DuplicateMember.objects.filter(dataset=ds, image__path__in=firsts).count()
    exclude_leaked_test_images(dataset=ds)
    _check(ds, truth)


def test_a_decision_moves_the_stored_counts_itself(data_dir, tmp_path):
    """The stored counts follow a label change without any read in between (the receiver, not a recount)."""
    ds = DatasetFactory(name="moves")
    images = [ImageFactory(dataset=ds, path=f"m{k}.png", label=1, original_label=1, split=split)
              for k, split in enumerate(["train", "train", "test", "test"])]
    for image in images[1:3]:
        DuplicateMember.objects.create(dataset=ds, image=image, group=images[1].pk, distance=1, linked_by="test")
    source = tmp_path / "truth.csv"
    source.write_text("path,true_label\n" + "".join(f"m{k}.png,sad\n" for k in range(4)))
    truth_register(dataset=ds, source=source)
    leaks_refresh(ds)
    panels = DatasetPanels.objects.get(dataset=ds)
    assert (panels.truth_wrong, panels.truth_fixed_excluded, panels.leaks["leaked_test_images"]) == (4, 0, 1)
    hash_before = panels.leaks["test_split_hash"]
    image_label_change(image_id=images[2].pk, action="exclude", expected_version=1)
    panels.refresh_from_db()
    assert (panels.truth_reviewed, panels.truth_fixed_excluded, panels.leaks["leaked_test_images"]) == (1, 1, 0)
    assert panels.leaks["test_split_hash"] != hash_before


def _panel_dataset(name, n, tmp_path):
    """n images, a quarter in test, every sixth pair a train/test copy, a registered truth file, some decisions."""
    ds = DatasetFactory(name=name)
    images = [ImageFactory(dataset=ds, path=f"{name}/{k}.png", label=k % 8, original_label=k % 8,
                           split="test" if k % 4 == 3 else "train", suspicion=1 - k / n) for k in range(n)]
    for k in range(2, n - 1, 6):
        for image in images[k : k + 2]:
            DuplicateMember.objects.create(dataset=ds, image=image, group=images[k].pk, distance=1, linked_by="test")
    source = tmp_path / f"{name}.csv"
    source.write_text("path,true_label\n" + "".join(f"{i.path},{['neutral', 'happy'][k % 3 == 0]}\n"
                                                    for k, i in enumerate(images)))
    truth_register(dataset=ds, source=source)
    leaks_refresh(ds)  # as find_duplicates does once it stored the groups
    user = UserFactory()
    for image in images[::5]:
        image_label_change(image_id=image.pk, action="exclude", expected_version=1, user=user)
    return ds


def test_the_dataset_page_reads_the_panels_with_the_same_queries_at_any_size(as_reviewer, data_dir, tmp_path):
    counts = []
    for n in (20, 60):
        ds = _panel_dataset(f"size{n}", n, tmp_path)
        # The truth file is not read at a view: spoiling it after registering changes nothing on the page.
        truth_path(ds).write_text("not a truth file")
        with CaptureQueriesContext(connection) as ctx:
            page = as_reviewer.get(reverse("dataset", args=[ds.name])).content.decode()
        assert 'id="leaks"' in page and 'id="known-truth"' in page
        stored = DatasetPanels.objects.get(dataset=ds)
        assert f"Reviewers have fixed <strong>{stored.truth_fixed_excluded}</strong>" in page
        assert stored.truth_fixed_excluded > 0
        # Neither panel walks the groups at a view: the stored report is one row.
        assert not [q for q in ctx.captured_queries if "curation_duplicatemember" in q["sql"]]
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_a_truth_file_registered_before_the_counts_were_stored_is_loaded_on_the_first_read(data_dir, tmp_path):
    ds = DatasetFactory(name="older")
    images = [ImageFactory(dataset=ds, path=f"o{k}.png", label=1, original_label=1) for k in range(5)]
    source = tmp_path / "truth.csv"
    source.write_text("path,true_label\n" + "".join(f"o{k}.png,{'sad' if k < 2 else 'happy'}\n" for k in range(5)))
    truth_register(dataset=ds, source=source)
    image_label_change(image_id=images[0].pk, action="relabel", label=CODE["sad"], expected_version=1)
    registered = known_truth(dataset=ds)
    # As a database migrated to 0020 finds it: the file in place, nothing stored.
    TruthLabel.objects.filter(dataset=ds).delete()
    DatasetPanels.objects.filter(dataset=ds).delete()
    loaded = known_truth(dataset=ds)
    assert loaded == registered and (loaded.wrong_total, loaded.fixed_relabelled) == (2, 1)
    assert TruthLabel.objects.filter(dataset=ds).count() == 5
