"""Near-duplicates and test leaks, through the product: synthetic faces with known copies imported by the real
importer, the find_duplicates command (its job run inline), the stored groups, the leak report, the exclusion of
leaked test images (command and API) and what it does to the test split's hash and the runs scored before."""
import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from PIL import Image as PILImage
from PIL import ImageFilter

from curation.classifier.selection import select_training_data
from curation.duplicates import align, detect
from curation.duplicates.detect import pair_scores
from curation.duplicates.leaks import current_test_split_hash, dataset_leaks, leaks_refresh, runs_test_split_notes
from curation.models import Dataset, DuplicateMember, Image, Job, LabelChange
from curation.selectors import dataset_get
from tests.factories import RunFactory
from training.labels import CLASSES
from training.synthetic_faces import face, knobs, make_synthetic_faces, near_duplicate, png_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_jobs")]
SIZE = 48


def _import(csv_path, name):
    call_command("import_dataset", str(csv_path), "--format", "csv", "--name", name, "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    return dataset_get(name=name)


def _find(name, *extra):
    out = io.StringIO()
    call_command("find_duplicates", "--dataset", name, "--inline", *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("dup-faces")
    summary = make_synthetic_faces(out, n=240, size=SIZE, seed=11, duplicates=0.15, nonfaces=0.05)
    with open(out / "truth.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    return out, summary, truth


def test_groups_match_the_generated_duplicates(generated):
    out, summary, truth = generated
    ds = _import(out / "labels.csv", "dups")
    assert Image.objects.filter(dataset=ds).count() == 240
    text = _find("dups")
    true_groups = {}
    for row in truth:
        if row["duplicate_group"]:
            true_groups.setdefault(row["duplicate_group"], []).append(row["path"])
    found = {}
    for group, path in DuplicateMember.objects.filter(dataset=ds).values_list("group", "image__path"):
        found.setdefault(group, []).append(path)
    scores = pair_scores(found.values(), true_groups.values())
    assert scores["true_pairs"] >= 30
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.9, scores
    # No non-face is taken for a copy of a face (two blank frames of one colour may look alike).
    outliers = {row["path"] for row in truth if row["outlier"] == "1"}
    assert not [paths for paths in found.values() if outliers & set(paths) and set(paths) - outliers]
    assert f"{len(found)} near-duplicate group(s)" in text
    # A second run replaces the groups rather than adding to them.
    _find("dups")
    assert DuplicateMember.objects.filter(dataset=ds).count() == sum(map(len, found.values()))


def _all_pairs_within(features, limits):
    """Every pair within the limits, by comparing all pairs (what the job never does)."""
    n, everything = len(features.hashes), set()
    for v in [None, *range(len(detect.VARIANTS))]:
        left = detect._as_seen(features, v)
        bits = np.bitwise_count(left.hashes[:, None] ^ features.hashes[None, :])
        colour = 1 - left.thumbs[:] @ features.thumbs.T
        close = (bits <= limits["phash"]) & (colour <= limits["colour"]) & ~np.eye(n, dtype=bool)
        close &= (bits <= detect.TIGHT_ABOVE_BITS) | (colour <= detect.TIGHT_COLOUR)  # a loose hash, a tight colour
        everything |= {(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(close))}
    return everything


def test_the_candidate_index_finds_every_pair_that_comparing_all_pairs_finds(generated):
    """The job never compares all pairs; on 240 faces with copies (fewer than LIST_SIZE x PROBES, so every cell of
    the index is scanned), its pairs are exactly those all pairs give."""
    out, _, truth = generated
    features = detect.features_of(PILImage.open(out / row["path"]) for row in truth)
    limits = {"phash": detect.MAX_HASH_DISTANCE, "colour": detect.MAX_COLOUR_DISTANCE}
    everything = _all_pairs_within(features, limits)
    found = {(i, j) for i, j, *_ in detect.near_pairs(features, limits)}
    assert len(everything) >= 30 and found == everything


def test_scanning_only_the_nearest_cells_still_links_every_copy_and_nothing_beyond_the_limits(generated, monkeypatch):
    """At scale a query scans only the PROBES cells nearest it. The same 240 faces cut into 60 cells of 4, a query
    scanning only the one nearest it: every pair found is within the limits, and every copy's pair that all pairs
    find is found (a copy's thumbnail lies so near its original's that they share a cell)."""
    out, _, truth = generated
    features = detect.features_of(PILImage.open(out / row["path"]) for row in truth)
    limits = {"phash": detect.MAX_HASH_DISTANCE, "colour": detect.MAX_COLOUR_DISTANCE}
    everything = _all_pairs_within(features, limits)
    groups = {}
    for k, row in enumerate(truth):
        if row["duplicate_group"]:
            groups.setdefault(row["duplicate_group"], []).append(k)
    copies = {(i, j) for group in groups.values() for i in group for j in group if i < j} & everything
    monkeypatch.setattr(detect, "LIST_SIZE", 4)
    monkeypatch.setattr(detect, "PROBES", 1)
    index = detect.CandidateIndex(features.thumbs)
    assert (index.cells, index.index.nprobe) == (60, 1)
    found = {(i, j) for i, j, *_ in detect.near_pairs(features, limits)}
    assert len(copies) >= 20 and copies <= found <= everything


def _write(out, rows):
    """rows: (name, pixels, label, split); writes the PNGs and labels.csv."""
    (out / "images").mkdir(parents=True)
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for name, pixels, label, split in rows:
            (out / "images" / name).write_bytes(png_bytes(pixels))
            writer.writerow([f"images/{name}", label, split])
    return out / "labels.csv"


@pytest.fixture
def leaky(tmp_path):
    """Dataset "leaky": 12 distinct faces; face 0 (train) has two re-captures in test, face 1 (val) one in test,
    face 2 (train) one in train; the other faces appear once, in every split."""
    k, seed = knobs(0.6), 5
    labels = [CLASSES[i % 8] for i in range(12)]
    splits = ["train", "val", "train", "test", "test", "val"] + ["train"] * 6
    rows = [(f"f{i}.png", face(seed, i, labels[i], SIZE, k)[0], labels[i], splits[i]) for i in range(12)]
    for copy, (source, split) in enumerate([(0, "test"), (0, "test"), (1, "test"), (2, "train")], start=100):
        pixels, _ = near_duplicate(seed, source, copy, labels[source], SIZE, k)
        rows.append((f"c{copy}.png", pixels, labels[source], split))
    return _import(_write(tmp_path / "leaky", rows), "leaky")


def test_a_train_test_leak_is_reported_with_the_test_images_it_affects(leaky, as_reviewer):
    text = _find("leaky")
    report = dataset_leaks(leaky)
    assert report["groups"] == 3 and report["images"] == 3 + 2 + 2
    leaks = {row["splits"]: row for row in report["leaks"]}
    assert (leaks["train/test"]["groups"], leaks["train/test"]["test_images"]) == (1, 2)
    assert (leaks["val/test"]["groups"], leaks["val/test"]["test_images"]) == (1, 1)
    assert report["leaked_test_images"] == 3
    assert {r["split"]: r["groups"] for r in report["within"]} == {"train": 1, "val": 0, "test": 0}
    assert {r["splits"]: r["groups"] for r in report["across"]} == {"train/test": 1, "val/test": 1}
    assert "train/test leaks: 1 group(s), 2 test image(s) affected" in text
    assert "val/test leaks: 1 group(s), 1 test image(s) affected" in text
    html = render_to_string("curation/pages/_leaks.html", {"leaks": report})
    assert "3 test images have a copy in train or val" in html and "images/c100.png (test)" in html
    api = as_reviewer.get("/api/datasets/leaky/leaks/").json()
    assert api["leaked_test_images"] == 3 and api["leaks"][0] == {"splits": "train/test", "groups": 1,
                                                                   "test_images": 2, "excluded": 0,
                                                                   "copies_excluded": 0}


def test_excluding_leaked_test_images_changes_the_test_split_hash_and_marks_earlier_runs(leaky):
    _find("leaky")
    before = current_test_split_hash(leaky)
    assert before == select_training_data(dataset=leaky).test_split_hash()
    old_run = RunFactory(dataset=leaky, test_split_hash=before)
    assert dataset_leaks(leaky)["runs_on_earlier_split"] == []

    text = _find("leaky", "--exclude-leaked-test")
    assert "excluded 3 leaked test image(s)" in text
    leaked = Image.objects.filter(dataset=leaky, path__in=["images/c100.png", "images/c101.png", "images/c102.png"])
    assert set(leaked.values_list("status", flat=True)) == {Image.Status.EXCLUDED}
    notes = LabelChange.objects.filter(image__in=leaked, action=LabelChange.Action.EXCLUDE).values_list("note", flat=True)
    assert len(notes) == 3 and all("test-split leak" in n for n in notes)
    # The run a classifier trains now records the new hash: the selection's test split lost the three images.
    selection = select_training_data(dataset=leaky)
    after = current_test_split_hash(leaky)
    assert after != before and selection.test_split_hash() == after
    assert len(selection.test) == 2 and not {i.path for i in selection.test} & set(leaked.values_list("path", flat=True))
    new_run = RunFactory(dataset=leaky, test_split_hash=after)
    report = dataset_leaks(leaky)
    assert report["runs_on_earlier_split"] == [old_run.pk] and new_run.pk not in report["runs_on_earlier_split"]
    assert report["leaked_test_images"] == 0
    assert {row["splits"]: row["excluded"] for row in report["leaks"]} == {"train/test": 2, "val/test": 1}
    html = render_to_string("curation/pages/_leaks.html", {"leaks": report})
    assert f"Run {old_run.pk}" in html and "scored on an earlier test split" in html
    assert runs_test_split_notes([old_run, new_run]) == {old_run.pk: "scored on an earlier test split"}


def test_excluding_the_train_and_val_copies_instead_keeps_the_test_split_and_marks_earlier_runs(leaky):
    _find("leaky")
    before = current_test_split_hash(leaky)
    old_run = RunFactory(dataset=leaky, test_split_hash=before)
    text = _find("leaky", "--exclude-leaking-copies")
    assert "excluded 2 train/val copies of test images; the test split stays" in text
    excluded = set(Image.objects.filter(dataset=leaky, status=Image.Status.EXCLUDED).values_list("path", flat=True))
    assert excluded == {"images/f0.png", "images/f1.png"}  # the train and val copies; f2's train-only group stays
    assert current_test_split_hash(leaky) == before
    report = dataset_leaks(leaky)
    assert report["leaked_test_images"] == 0
    assert {row["splits"]: (row["groups"], row["copies_excluded"]) for row in report["leaks"]} == {
        "train/test": (0, 1), "val/test": (0, 1)}  # the val/test leak ended through an excluded val image: reported
    new_run = RunFactory(dataset=leaky, test_split_hash=before)
    assert runs_test_split_notes([old_run, new_run]) == {
        old_run.pk: "trained with copies of test images, since excluded"}
    html = render_to_string("curation/pages/_leaks.html", {"leaks": report})
    assert "1 more group kept its test image and excluded the val copy" in html
    with pytest.raises(CommandError, match="give one of --exclude-leaked-test and --exclude-leaking-copies"):
        _find("leaky", "--exclude-leaked-test", "--exclude-leaking-copies")


def test_the_leak_report_reads_a_constant_number_of_queries(leaky):
    _find("leaky")
    with CaptureQueriesContext(connection) as few:
        assert dataset_leaks(leaky)["groups"] == 3
    # Twelve more groups of two (stored as the job stores them, the report refreshed as the job refreshes it): the
    # report reads them with the same queries.
    singles = list(Image.objects.filter(dataset=leaky).exclude(duplicate_member__isnull=False).order_by("id"))
    for a, b in zip(singles[::2], singles[1::2]):
        for image in (a, b):
            DuplicateMember.objects.create(dataset=leaky, image=image, group=a.pk, distance=0, linked_by="test")
    leaks_refresh(leaky)
    with CaptureQueriesContext(connection) as many:
        assert dataset_leaks(leaky)["groups"] > 3
    assert len(many) == len(few)


def test_the_api_pages_the_groups_and_the_export_names_each_image_s_group(leaky, reviewer_api):
    _find("leaky")
    first = reviewer_api.get("/api/datasets/leaky/duplicates/", {"page_size": 2}).json()
    second = reviewer_api.get(first["next"]).json()
    groups = first["results"] + second["results"]
    assert len(first["results"]) == 2 and len(second["results"]) == 1 and second["next"] is None
    by_paths = {tuple(m["path"] for m in g["members"]): g for g in groups}
    leak = by_paths[("images/c100.png", "images/c101.png", "images/f0.png")]
    assert leak["splits"] == ["test", "train"] and leak["group"] == leak["members"][0]["id"]
    assert {(m["split"], m["label"], m["status"]) for m in leak["members"]} == {
        ("train", CLASSES[0], "unreviewed"), ("test", CLASSES[0], "unreviewed")}
    assert all(m["linked_by"].startswith("phash+colour") for g in groups for m in g["members"])
    assert reviewer_api.get("/api/datasets/nope/duplicates/").status_code == 404
    response = reviewer_api.get("/api/datasets/leaky/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert list(rows[0])[-1] == "duplicate_group"
    group_of = {row["path"]: row["duplicate_group"] for row in rows}
    assert group_of["images/c100.png"] == group_of["images/c101.png"] == group_of["images/f0.png"] == str(
        leak["group"])
    assert group_of["images/f3.png"] == "" and len({g for g in group_of.values() if g}) == 3


def test_an_unreadable_image_is_skipped_and_counted_and_the_others_are_still_grouped(leaky, settings):
    broken = Image.objects.get(dataset=leaky, path="images/c103.png")  # the train copy of face 2
    (Path(settings.MEDIA_ROOT) / broken.file).write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    _find("leaky")
    job = Job.objects.filter(kind="find_duplicates").latest("id")
    assert job.status == Job.Status.SUCCEEDED
    assert (job.result["unreadable_count"], job.result["unreadable"]) == (1, [broken.pk])
    assert "1 image file(s) could not be read" in job.result["warning"]
    assert dataset_leaks(leaky)["groups"] == 2 and not DuplicateMember.objects.filter(image=broken).exists()


def test_the_api_action_excludes_for_curators_only(leaky, reviewer_api, curator_api):
    _find("leaky")
    assert reviewer_api.post("/api/datasets/leaky/leaks/exclude-test/").status_code == 403
    assert reviewer_api.post("/api/datasets/leaky/leaks/exclude-copies/").status_code == 403
    assert not Image.objects.filter(dataset=leaky, status=Image.Status.EXCLUDED).exists()
    response = curator_api.post("/api/datasets/leaky/leaks/exclude-test/")
    assert response.status_code == 200
    body = response.json()
    assert len(body["excluded"]) == 3 and body["test_split_hash_before"] != body["test_split_hash_after"]
    assert LabelChange.objects.filter(action=LabelChange.Action.EXCLUDE, user__username="carl").count() == 3


def test_bad_input_is_refused_by_name_and_nothing_is_stored(faces, as_reviewer):
    with pytest.raises(CommandError, match="dataset 'nope' does not exist"):
        _find("nope")
    Dataset.objects.create(name="empty", format="csv", source="/nowhere")
    with pytest.raises(CommandError, match="dataset 'empty' has no images"):
        _find("empty")
    with pytest.raises(CommandError, match="max_hash_distance must be a whole number in \\[0, 64\\]"):
        _find("faces", "--max-hash-distance", "65")
    assert not Job.objects.filter(kind="find_duplicates").exists() and not DuplicateMember.objects.exists()
    assert as_reviewer.get("/api/datasets/nope/leaks/").status_code == 404


def test_mirrored_and_recropped_copies_are_linked_to_their_originals_and_other_people_are_not(tmp_path):
    """20 different people framed alike (the hard negatives), one mirrored copy of face 0, one copy of face 1
    cropped by 7 % of the side on each side, one of face 2 cropped unevenly (3 % left, 8 % right), all in other
    splits: exactly three groups, each linked by the variant that explains it."""
    k, seed = knobs(0.6), 7
    labels = [CLASSES[i % 8] for i in range(20)]
    rows = [(f"f{i:02d}.png", face(seed, i, labels[i], SIZE, k)[0], labels[i], "train") for i in range(20)]
    mirror = face(seed, 0, labels[0], SIZE, k)[0][:, ::-1]

    def cropped(i, left, top, right, bottom):
        original = PILImage.fromarray(face(seed, i, labels[i], SIZE, k)[0])
        box = (left * SIZE, top * SIZE, SIZE - right * SIZE, SIZE - bottom * SIZE)
        return np.asarray(original.crop(box).resize((SIZE, SIZE), PILImage.BICUBIC))

    rows += [("m0.png", mirror, labels[0], "test"), ("c1.png", cropped(1, .07, .07, .07, .07), labels[1], "val"),
             ("c2.png", cropped(2, .03, .06, .08, .05), labels[2], "test")]
    ds = _import(_write(tmp_path / "copies", rows), "copies")
    _find("copies")
    groups = {}
    for group, path, linked_by in DuplicateMember.objects.filter(dataset=ds).values_list(
            "group", "image__path", "linked_by"):
        groups.setdefault(group, {})[path] = linked_by
    assert sorted(sorted(g) for g in groups.values()) == [
        ["images/c1.png", "images/f01.png"], ["images/c2.png", "images/f02.png"], ["images/f00.png", "images/m0.png"]]
    linked = {path: how for g in groups.values() for path, how in g.items()}
    assert linked["images/m0.png"] == "phash+colour+aligned of mirror", linked
    assert linked["images/c1.png"] == linked["images/c2.png"] == "phash+colour+aligned of 90% crop", linked


def test_the_benchmark_prints_recall_precision_and_outlier_auroc(capsys):
    from benchmarks import duplicates

    duplicates.main(["--n", "80", "--size", str(SIZE), "--seeds", "3"])
    text = capsys.readouterr().out
    assert re.search(r"^near-duplicate pairs: recall [\d.]+-[\d.]+, precision [\d.]+-[\d.]+ \(goal", text, re.M), text
    assert re.search(r"^outlier AUROC \(IsolationForest on HOG\): [\d.]+-[\d.]+", text, re.M), text
    assert not Dataset.objects.filter(name__startswith="bench-duplicates").exists()  # it deletes its dataset


def test_a_curator_starts_the_job_from_the_jobs_page(leaky, as_curator):
    page = as_curator.get("/jobs/", {"dataset": "leaky"}).content.decode()
    assert 'data-form="duplicates"' in page
    response = as_curator.post("/jobs/start/duplicates/", {"duplicates-dataset": "leaky",
                                                           "duplicates-max_hash_distance": "99"})
    assert response.status_code == 400 and "max_hash_distance must be a whole number in [0, 64], not 99" in \
        response.content.decode()
    response = as_curator.post("/jobs/start/duplicates/", {"duplicates-dataset": "leaky",
                                                           "duplicates-max_residual": "-1"})
    assert response.status_code == 400 and "max_residual must be a number in [0.0, 100.0], not -1.0" in \
        response.content.decode()
    assert not Job.objects.filter(kind="find_duplicates").exists()
    response = as_curator.post("/jobs/start/duplicates/", {"duplicates-dataset": "leaky"})
    assert response.status_code == 302
    job = Job.objects.get(kind="find_duplicates")
    assert job.params == {"dataset": "leaky", "max_hash_distance": 22, "max_colour_distance": 0.03,
                          "max_residual": 0.04}


def test_a_chain_of_links_does_not_join_its_ends_while_a_tight_group_stays_whole():
    """Average linkage: A~B, B~C, C~D (A and D far apart, as different people linked by chance through others) do not
    make one group, and a longer chain is cut into pieces, while four copies all linked to each other are one."""
    chain = [(0, 1, 10.0, ""), (1, 2, 11.0, ""), (2, 3, 12.0, "")]
    groups = detect.groups_of(20, chain)
    assert [0, 1, 2, 3] not in groups and all(len(g) < 4 for g in groups)
    assert detect.groups_of(20, chain, share=0) == [[0, 1, 2, 3]]  # connected components: one group
    long_chain = [(k, k + 1, 5.0, "") for k in range(10, 19)]
    assert max(len(g) for g in detect.groups_of(20, long_chain)) <= 3
    tight = [(i, j, 3.0, "") for i in (4, 5, 6, 7) for j in (4, 5, 6, 7) if i < j]
    groups = detect.groups_of(20, tight + chain + long_chain)
    assert [4, 5, 6, 7] in groups
    # One chance link, looser than the copies' own, from a member of the tight group to an outsider joins nothing.
    assert detect.groups_of(20, tight + [(7, 8, 15.0, "")]) == [[4, 5, 6, 7]]
    assert detect.groups_of(20, tight + [(7, 8, 15.0, "")], share=0) == [[4, 5, 6, 7, 8]]


def test_a_pair_beyond_the_tight_hash_bits_needs_a_tight_colour_match():
    """Beyond TIGHT_ABOVE_BITS pHash bits, a pair within the colour limit but not within TIGHT_COLOUR is not linked;
    within TIGHT_COLOUR it is."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=detect.DIM)
    base = (base - base.mean()) / np.linalg.norm(base - base.mean())

    def unit(v):
        v = v - v.mean()
        return v / np.linalg.norm(v)

    def near(distance):
        """A unit thumbnail at colour distance `distance` (1 - cosine) from base."""
        other = unit(rng.normal(size=detect.DIM))
        other = unit(other - (other @ base) * base)
        c = 1 - distance
        return unit(c * base + np.sqrt(1 - c * c) * other)

    far_bits = np.uint64((1 << (detect.TIGHT_ABOVE_BITS + 1)) - 1)  # TIGHT_ABOVE_BITS + 1 bits set
    near_bits = np.uint64((1 << detect.TIGHT_ABOVE_BITS) - 1)
    thumbs = np.stack([base, near(0.01), base, near(0.01), near(0.002)]).astype(np.float32)
    hashes = np.array([0, far_bits, 0, near_bits, far_bits], np.uint64)
    features = detect.Features(hashes, thumbs)
    pairs = {(i, j) for i, j, *_ in detect.near_pairs(features)}
    assert detect.colour_distance(features, np.array([0]), np.array([1]))[0] == pytest.approx(0.01, abs=1e-4)
    assert (0, 1) not in pairs  # 21 bits, colour 0.01: within both limits, not within the tight colour
    assert (0, 3) in pairs  # 20 bits, colour 0.01: the plain limits
    assert (0, 4) in pairs  # 21 bits, colour 0.002: the tight colour makes up for the loose hash


def test_each_member_s_distance_is_its_closest_link_inside_its_own_group():
    """Image 3's closest link (to 2, at 2 bits) leads into the tight group 0-1-2, which it does not join (one link of
    three); it joins 4 at 5 bits, and that is the distance stored for it."""
    tight = [(0, 1, 1.0, ""), (0, 2, 1.0, ""), (1, 2, 1.0, "")]
    pairs = tight + [(2, 3, 2.0, "mirror"), (3, 4, 5.0, "")]
    groups = detect.groups_of(5, pairs)
    assert groups == [[0, 1, 2], [3, 4]]
    nearest = detect.nearest_in_groups(groups, pairs)
    assert nearest[3] == (5.0, "") and nearest[4] == (5.0, "") and nearest[2] == (1.0, "")


def test_aligned_pictures_tell_copies_from_other_people_framed_alike():
    """Once aligned, each copy of a face (mirrored, cropped unevenly, JPEG at quality 30, blurred, captured again)
    stays within the residual limit of its original, while none of 20 different people framed alike (the same
    knobs, pose and background) comes within it of another."""
    k, seed = knobs(0.6), 7
    labels = [CLASSES[i % 8] for i in range(20)]
    people = [face(seed, i, labels[i], SIZE, k)[0] for i in range(20)]
    original = PILImage.fromarray(people[0])
    jpeg = io.BytesIO()
    original.save(jpeg, "JPEG", quality=30)
    copies = {
        "mirror": (people[0][:, ::-1], "mirror"),
        "crop": (np.asarray(original.crop((1.5, 3, SIZE - 4, SIZE - 2.5)).resize((SIZE, SIZE), PILImage.BICUBIC)),
                 "90% crop"),
        "jpeg": (np.asarray(PILImage.open(jpeg).convert("RGB")), ""),
        "blur": (np.asarray(original.filter(ImageFilter.GaussianBlur(0.9))), ""),
        "recapture": (near_duplicate(seed, 0, 100, labels[0], SIZE, k)[0], ""),
    }
    pictures = {i: align.grey_thumbnail(PILImage.fromarray(p)) for i, p in enumerate(people)}
    pictures |= {100 + n: align.grey_thumbnail(PILImage.fromarray(p)) for n, (p, _) in enumerate(copies.values())}
    # (i, j, bits, how, source, colour): colour 0 so that the limit is the plain MAX_RESIDUAL.
    copy_pairs = [(0, 100 + n, 0.0, how, 0, 0.0) for n, (_, how) in enumerate(copies.values())]
    other_pairs = [(i, j, 0.0, "", i, 0.0) for i in range(20) for j in range(i + 1, 20)]
    found = dict(zip(copies, align.pair_residuals(copy_pairs, pictures, detect.CROP_SCALE)))
    assert all(r <= detect.MAX_RESIDUAL for r in found.values()), found
    others = align.pair_residuals(other_pairs, pictures, detect.CROP_SCALE)
    assert others.min() > detect.MAX_RESIDUAL, sorted(others)[:3]
    kept, dropped = align.confirmed(copy_pairs + other_pairs, pictures, detect.CROP_SCALE)
    assert [pair[:2] for pair in kept] == [pair[:2] for pair in copy_pairs] and dropped == len(other_pairs)


def test_the_alignment_drops_links_the_hash_and_colour_made_between_different_people(tmp_path):
    """400 faces with little identity spread (difficulty 0.1, so that different people look alike): keeping every
    link (a residual limit no pair exceeds) groups different people together; the default limit does not, and loses
    none of the true pairs the links held."""
    out = tmp_path / "alike"
    make_synthetic_faces(out, n=400, size=SIZE, seed=3, duplicates=0.1, nonfaces=0.0, difficulty=0.1)
    with open(out / "truth.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    _import(out / "labels.csv", "alike")
    true_groups, scores = {}, {}
    for row in truth:
        if row["duplicate_group"]:
            true_groups.setdefault(row["duplicate_group"], []).append(row["path"])
    for limit in ("100", str(detect.MAX_RESIDUAL)):
        _find("alike", "--max-residual", limit)
        found = {}
        for group, path in DuplicateMember.objects.filter(dataset__name="alike").values_list("group", "image__path"):
            found.setdefault(group, []).append(path)
        scores[limit] = pair_scores(found.values(), true_groups.values())
    every, default = scores["100"], scores[str(detect.MAX_RESIDUAL)]
    assert every["found_pairs"] - every["right_pairs"] >= 3, scores  # different people grouped
    assert default["precision"] == 1.0 and default["right_pairs"] == every["right_pairs"], scores
