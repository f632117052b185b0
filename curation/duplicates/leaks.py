"""Near-duplicate groups as pages, the API and commands read them, and the one write: excluding leaked test images.

A leak is a group with a test image and a train or val image: a model trained (or tuned) on one copy is tested on
the other, so its test figures come out too high. Excluded images count for nothing: an excluded train image is
not trained on, and an excluded test image has left the test split (curation/classifier/selection.py), which
then gets a new hash; the runs scored on the old one are listed as scored on an earlier test split.

The report pages show (dataset_leaks) is stored (DatasetPanels.leaks) and read as one row: leaks_refresh recomputes
it where its inputs change (find_duplicates' groups, an import's new images, and through the label_changed signal
an exclusion or its undo of a grouped or test image), so a view never walks the groups or the test split.
"""
import threading
from contextlib import contextmanager

from django.db import transaction
from django.db.models import F

from curation.classifier.selection import Item, Selection
from curation.models import DatasetPanels, DuplicateMember, Image, Job, LabelChange, Run
from curation.services import VersionConflict, image_label_change
from training.labels import CLASSES

JOB_KIND = "find_duplicates"
SPLITS = ("train", "val", "test")
LEAK_PAIRS = (("train", "test"), ("val", "test"))
EXAMPLES = 10  # leak groups a page lists


def current_test_split_hash(dataset):
    """The hash a run trained now would record (Selection.test_split_hash of the test images not excluded)."""
    rows = (Image.objects.filter(dataset=dataset, split=Image.Split.TEST).exclude(status=Image.Status.EXCLUDED)
            .values_list("id", "original_label"))
    return Selection(test=[Item("image", pk, "", "", label, "") for pk, label in rows]).test_split_hash()


def runs_on_earlier_test_split(dataset, runs=None, *, current=None):
    """Ids of the dataset's runs (or of `runs`) that were scored on an earlier test split than today's: their
    recorded test_split_hash differs from the current one. Runs that recorded none are left out."""
    current = current or current_test_split_hash(dataset)
    if runs is None:
        runs = Run.objects.filter(dataset=dataset).exclude(test_split_hash="").values_list("id", "test_split_hash")
    else:
        runs = [(r.pk, r.test_split_hash) for r in runs if r.test_split_hash]
    return sorted(pk for pk, h in runs if h != current)


COPY_NOTE = "train/val copy of a test image"  # how exclude_leaking_copies' audit notes start


def runs_test_split_notes(runs):
    """{run id: note} for those of `runs` (any datasets; two queries per dataset) a leak was acted on since, either
    way: "scored on an earlier test split" where leaked test images were excluded (the test split is no longer the
    dataset's), "trained with copies of test images, since excluded" where a run started before train or val copies
    of test images were excluded (exclude_leaking_copies). What the run comparison shows beside such a run."""
    by_dataset = {}
    for run in runs:
        by_dataset.setdefault(run.dataset_id, []).append(run)
    notes = {}
    for dataset_id, members in by_dataset.items():
        copies_excluded = LabelChange.objects.filter(image__dataset_id=dataset_id, action=LabelChange.Action.EXCLUDE,
                                                     note__startswith=COPY_NOTE)
        last_copy_excluded = copies_excluded.order_by("-created_at").values_list("created_at", flat=True).first()
        if last_copy_excluded:
            for run in members:
                if run.created_at and run.created_at < last_copy_excluded:
                    notes[run.pk] = "trained with copies of test images, since excluded"
        for pk in runs_on_earlier_test_split(dataset_id, members):  # a Dataset or its id
            notes[pk] = "scored on an earlier test split" + (f"; {notes[pk]}" if pk in notes else "")
    return notes


def _groups(dataset):
    """{group: [member dicts]} from one query."""
    groups = {}
    rows = (DuplicateMember.objects.filter(dataset=dataset).order_by("group", "image_id")
            .values("group", "image_id", "distance", "image__path", "image__split", "image__status"))
    for row in rows:
        groups.setdefault(row["group"], []).append({
            "id": row["image_id"], "path": row["image__path"], "split": row["image__split"],
            "excluded": row["image__status"] == Image.Status.EXCLUDED, "distance": row["distance"]})
    return groups


def _leaked_test(members, pair):
    """Test images of a group (excluded or not) that leak through `pair`'s other split: only if the group has an
    image of that split that is not excluded."""
    other = pair[0]
    if not any(m["split"] == other and not m["excluded"] for m in members):
        return []
    return [m for m in members if m["split"] == "test"]


def group_leaders(dataset):
    """One DuplicateMember a group, the group's lowest image (its name), ordered by group: what a page of groups
    is cut from (the API's cursor pages)."""
    return DuplicateMember.objects.filter(dataset=dataset, image_id=F("group")).order_by("group")


def groups_members(dataset, groups):
    """{group: [{"id", "path", "split", "label", "status", "linked_by", "distance"}]} of the given groups, members by
    image id, from one query."""
    out = {g: [] for g in groups}
    rows = (DuplicateMember.objects.filter(dataset=dataset, group__in=list(out)).order_by("group", "image_id")
            .values("group", "image_id", "image__path", "image__split", "image__label", "image__status", "linked_by",
                    "distance"))
    for row in rows:
        out[row["group"]].append({
            "id": row["image_id"], "path": row["image__path"], "split": row["image__split"],
            "label": CLASSES[row["image__label"]], "status": row["image__status"], "linked_by": row["linked_by"],
            "distance": row["distance"]})
    return out


def leaked_test_images(dataset):
    """Test images (not excluded) in a group with a train or val image that is not excluded: {image id: [ids of
    the train/val copies]}."""
    out = {}
    for members in _groups(dataset).values():
        copies = [m["id"] for m in members if m["split"] != "test" and not m["excluded"]]
        for m in members:
            if m["split"] == "test" and not m["excluded"] and copies:
                out[m["id"]] = copies
    return out


def leaking_copies(dataset):
    """Train and val images (not excluded) in a group with a test image that is not excluded: {image id: [ids of the
    test copies]}, what exclude_leaking_copies excludes."""
    out = {}
    for members in _groups(dataset).values():
        tests = [m["id"] for m in members if m["split"] == "test" and not m["excluded"]]
        for m in members:
            if m["split"] != "test" and not m["excluded"] and tests:
                out[m["id"]] = tests
    return out


def _groups_report(dataset):
    """The stored report's figures that read the groups (one query over DuplicateMember): see dataset_leaks."""
    groups = _groups(dataset)
    within = dict.fromkeys(SPLITS, 0)
    across = {}
    leaks = {pair: {"groups": 0, "test_images": set(), "excluded": set(), "copies_excluded": 0}
             for pair in LEAK_PAIRS}
    examples = []
    for group, members in groups.items():
        splits = sorted({m["split"] for m in members}, key=SPLITS.index)
        if len(splits) == 1:
            within[splits[0]] += 1
        else:
            for a in range(len(splits)):
                for b in range(a + 1, len(splits)):
                    key = f"{splits[a]}/{splits[b]}"
                    across[key] = across.get(key, 0) + 1
        leaking = False
        for pair in LEAK_PAIRS:
            # Ended the other way: the test image kept, every copy in the other split excluded.
            if (any(m["split"] == "test" and not m["excluded"] for m in members)
                    and any(m["split"] == pair[0] for m in members)
                    and all(m["excluded"] for m in members if m["split"] == pair[0])):
                leaks[pair]["copies_excluded"] += 1
            tests = _leaked_test(members, pair)
            if tests:
                leaks[pair]["groups"] += 1
                leaks[pair]["test_images"] |= {m["id"] for m in tests if not m["excluded"]}
                leaks[pair]["excluded"] |= {m["id"] for m in tests if m["excluded"]}
                leaking = leaking or any(not m["excluded"] for m in tests)
        if leaking and len(examples) < EXAMPLES:
            examples.append({"group": group, "images": members})
    return {
        "groups": len(groups),
        "images": sum(len(m) for m in groups.values()),
        "within": [{"split": s, "groups": within[s]} for s in SPLITS],
        "across": [{"splits": k, "groups": v} for k, v in sorted(across.items())],
        "leaks": [{"splits": "/".join(pair), "groups": v["groups"], "test_images": len(v["test_images"]),
                   "excluded": len(v["excluded"]), "copies_excluded": v["copies_excluded"]}
                  for pair, v in leaks.items()],
        "leaked_test_images": len(set().union(*(v["test_images"] for v in leaks.values()))),
        "examples": examples,
    }


def leaks_refresh(dataset, *, groups=True, test_split=True):
    """Recompute and store `dataset`'s leak report (DatasetPanels.leaks): the groups' figures (groups=True, one
    query over its DuplicateMember rows) and the test split's hash (test_split=True, one over its test images),
    keeping the stored part not asked for. Called by every writer of their inputs: the find_duplicates job (in the
    transaction that stores the groups), the import job (new test images change the hash), the exclusions here,
    and the label_changed receiver. The panel row is locked first, so two refreshes at once end with the later
    one's figures, each read after the other committed. Returns the stored report."""
    with transaction.atomic():
        panels, _ = DatasetPanels.objects.select_for_update().get_or_create(dataset=dataset)
        stored = panels.leaks or {}
        if not {"groups", "test_split_hash"} <= stored.keys():
            groups = test_split = True  # nothing stored yet: all of it
        report = dict(stored)
        if groups:
            report.update(_groups_report(dataset))
        if test_split:
            report["test_split_hash"] = current_test_split_hash(dataset)
        panels.leaks = report
        panels.save(update_fields=["leaks", "updated_at"])
    return report


def leaks_stale(dataset):
    """Forget `dataset`'s stored leak report (the next read recomputes it): one UPDATE, for a writer in the middle
    of a change (an import's batch) that refreshes at its end; a crash before the end leaves no stale report."""
    DatasetPanels.objects.filter(dataset=dataset).update(leaks=None)


_deferred = threading.local()  # datasets whose label_changed refreshes wait for one refresh at the end


@contextmanager
def _one_refresh(dataset):
    """Many exclusions, each in its own transaction as one by one, the report refreshed once at the end instead of
    after each: forgotten first (leaks_stale), so a failure half-way leaves it to be recomputed by the next read.
    Not one transaction for them all: it would hold the panel row (the truth counts' UPDATE) while waiting for the
    next image's row, which a reviewer's decision may hold while it waits for the panel row."""
    ids = _deferred.__dict__.setdefault("ids", set())
    ids.add(dataset.pk)
    leaks_stale(dataset)
    try:
        yield
    finally:
        ids.discard(dataset.pk)
    leaks_refresh(dataset)


def leaks_on_label_changed(sender, *, image, change, **kwargs):
    """label_changed's receiver (connected in curation/apps.py), inside the change's transaction: an exclusion or
    its undo of a test image changes the test split's hash, of a grouped image the groups' leak figures; relabels
    and confirms change neither. Nothing is stored yet (no report): the next read computes it."""
    excluded = Image.Status.EXCLUDED
    if (change.old_status == excluded) == (change.new_status == excluded):
        return
    if image.dataset_id in getattr(_deferred, "ids", ()):
        return
    if not DatasetPanels.objects.filter(dataset_id=image.dataset_id, leaks__isnull=False).exists():
        return
    grouped = DuplicateMember.objects.filter(image_id=image.pk).exists()
    test = image.split == Image.Split.TEST
    if grouped or test:
        leaks_refresh(image.dataset, groups=grouped, test_split=test)


def dataset_leaks(dataset):
    """Near-duplicates of a dataset by split, for its page and the run comparison: the stored report (leaks_refresh;
    computed and stored here the first time) and two small live queries, a constant number whatever the size:

    - checked: the latest finished find_duplicates job (id, finished_at, params), or None: never checked;
    - groups, images: how many groups and images in them;
    - within: [{"split", "groups"}] groups all of one split; across: [{"splits": "train/test", "groups"}] groups
      spanning two or more splits, by each pair of splits they span;
    - leaks: [{"splits": "train/test", "groups", "test_images", "excluded", "copies_excluded"}]: groups with a test
      image and a train (val) image that is not excluded, the test images in them still in the test split, and
      those excluded; copies_excluded: groups whose test image stays and whose train (val) copies are all excluded
      (the leak ended the other way, exclude_leaking_copies, or by a reviewer's exclusion);
    - leaked_test_images: distinct test images still leaking (what --exclude-leaked-test would exclude);
    - examples: the first EXAMPLES leak groups, each {"group", "images": [{"id", "path", "split", "excluded"}]};
    - test_split_hash: today's; runs_on_earlier_split: ids of runs scored on an earlier test split.
    """
    job = (Job.objects.filter(kind=JOB_KIND, status=Job.Status.SUCCEEDED, params__dataset=dataset.name)
           .order_by("-finished_at", "-id").values("id", "finished_at", "params").first())
    stored = DatasetPanels.objects.filter(dataset=dataset).values_list("leaks", flat=True).first()
    if stored is None:
        stored = leaks_refresh(dataset)
    keys = ("groups", "images", "within", "across", "leaks", "leaked_test_images", "examples")
    return {
        "dataset": dataset.name,
        "checked": job,
        **{key: stored[key] for key in keys},
        "test_split_hash": stored["test_split_hash"],
        "runs_on_earlier_split": runs_on_earlier_test_split(dataset, current=stored["test_split_hash"]),
    }


def _exclude(dataset, ids, note_of, user):
    """Exclude `ids` one by one (a conflict skips its image only), the stored report refreshed once at the end."""
    versions = dict(Image.objects.filter(pk__in=ids).values_list("id", "version"))
    excluded, conflicts = [], []
    with _one_refresh(dataset):
        for image_id in sorted(ids):
            try:
                image_label_change(image_id=image_id, action=LabelChange.Action.EXCLUDE,
                                   expected_version=versions[image_id], user=user, note=note_of(image_id))
                excluded.append(image_id)
            except VersionConflict:
                conflicts.append(image_id)
    return excluded, conflicts


def _listed(ids):
    return ", ".join(map(str, ids[:5])) + (" …" if len(ids) > 5 else "")


def exclude_leaking_copies(*, dataset, user=None):
    """The other way to end a leak: keep the test images and exclude their train and val copies (leaking_copies),
    each through image_label_change with its audit row (undo brings one back). The test split and its hash stay;
    runs trained before are noted as trained with copies of test images (runs_test_split_notes). Returns
    {"excluded", "conflicts", "test_split_hash"}."""
    copies = leaking_copies(dataset)
    excluded, conflicts = _exclude(dataset, copies, lambda pk: f"{COPY_NOTE}: near-duplicate of test image(s) "
                                                      f"{_listed(copies[pk])} (find_duplicates)", user)
    return {"excluded": excluded, "conflicts": conflicts, "test_split_hash": current_test_split_hash(dataset)}


def exclude_leaked_test_images(*, dataset, user=None):
    """Exclude every test image that leaks (leaked_test_images), each through image_label_change with its audit
    row, so an undo brings it back. The test split changes, and with it its hash. Returns {"excluded": [ids],
    "conflicts": [ids changed meanwhile, left as they are], "test_split_hash_before", "test_split_hash_after"}."""
    before = current_test_split_hash(dataset)
    leaked = leaked_test_images(dataset)
    excluded, conflicts = _exclude(dataset, leaked, lambda pk: f"test-split leak: near-duplicate of image(s) "
                                                      f"{_listed(leaked[pk])} (find_duplicates)", user)
    return {"excluded": excluded, "conflicts": conflicts, "test_split_hash_before": before,
            "test_split_hash_after": current_test_split_hash(dataset)}
