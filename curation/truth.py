"""Known truth: a dataset's true labels, where someone knows them (the demo's synthetic faces, a benchmark's).

A truth file is registered per dataset (`manage.py register_truth --dataset NAME PATH`) and stored as
DATA_DIR/truth/NAME.csv. It is read only to *show* how the product is doing (curation/pages/_known_truth.html):
how many of the review queue's first N images have wrong labels, and how many wrong labels reviewers have fixed.
No signal, score, queue or training job may read it: tests/curation/test_truth.py checks that no scoring,
classifier, CycleGAN or training module imports this one.

The file is a CSV with a header naming at least `path` (as the dataset's images know it) and `true_label` (a
class name); other columns (make_synthetic_faces' truth.csv has intensity and noisy) are ignored.

Registering also stores each image's true label (TruthLabel) and the panel's counts (DatasetPanels.truth_*), which
every label change then moves by its own difference (truth_on_label_changed, through curation.signals.label_changed,
in the change's transaction), so the panel reads one row and the queue's first N instead of the file and every
image. A file registered before the counts were stored is loaded into them on the first read.
"""
import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F

from curation.models import DatasetPanels, Image, TruthLabel
from training.labels import CLASSES, UnknownLabel, parse_label

QUEUE_TOP = 50  # the panel's N: the first N images of the review queue
REQUIRED_COLUMNS = ("path", "true_label")
EXAMPLES = 3  # paths named in a refusal


class TruthError(ValueError):
    """A truth file that cannot be registered; the message says why. Nothing registered before is changed."""


def truth_dir():
    return Path(settings.DATA_DIR) / "truth"


def truth_path(dataset):
    """Where `dataset`'s truth file is (or would be) registered."""
    return truth_dir() / f"{dataset.name}.csv"


def _parse(source):
    """{path: true class code} from a truth CSV, or TruthError naming the first problem."""
    source = Path(source)
    if not source.is_file():
        raise TruthError(f"no truth file at {source}")
    try:
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise TruthError(f"{source}: the header needs the columns {', '.join(REQUIRED_COLUMNS)}; "
                                 f"missing {', '.join(missing)} (header: {', '.join(reader.fieldnames or []) or 'none'})")
            truth = {}
            for line, row in enumerate(reader, start=2):
                path = (row["path"] or "").strip()
                if not path:
                    raise TruthError(f"{source} line {line}: empty path")
                if path in truth:
                    raise TruthError(f"{source} line {line}: {path} is listed twice")
                try:
                    truth[path] = parse_label(row["true_label"] or "")
                except UnknownLabel as exc:
                    raise TruthError(f"{source} line {line}: {exc}") from None
    except UnicodeDecodeError:
        raise TruthError(f"{source} is not a UTF-8 CSV file") from None
    if not truth:
        raise TruthError(f"{source} lists no image")
    return truth


def _some(paths):
    paths = sorted(paths)
    more = f" and {len(paths) - EXAMPLES} more" if len(paths) > EXAMPLES else ""
    return ", ".join(paths[:EXAMPLES]) + more


def truth_register(*, dataset, source):
    """Check `source` against `dataset` and copy it to truth_path(dataset); return {"path", "images", "wrong"}.

    Refused (TruthError, the registered file untouched) unless its paths are exactly the dataset's images' paths:
    a truth file for other images would make every figure of the panel wrong."""
    truth = _parse(source)
    images = dict(Image.objects.filter(dataset=dataset).values_list("path", "original_label"))
    if not images:
        raise TruthError(f"dataset {dataset.name} has no images yet: import them before registering their truth")
    unknown = truth.keys() - images.keys()
    missing = images.keys() - truth.keys()
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} path(s) of the file are not images of {dataset.name} ({_some(unknown)})")
        if missing:
            parts.append(f"{len(missing)} image(s) of {dataset.name} are not in the file ({_some(missing)})")
        raise TruthError(f"{source} does not match dataset {dataset.name}: " + "; ".join(parts)
                         + ". Register the truth file written with the images the dataset was imported from.")
    target = truth_path(dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed over it: a reader sees the old file or the new one, never half. The
    # stored labels and counts commit only once the file is in place (a failed rename rolls them back).
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{dataset.name}.", suffix=".csv")
    try:
        os.chmod(tmp, 0o644)  # as any other file the product writes (mkstemp makes it private)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(REQUIRED_COLUMNS)
            for path in sorted(truth):
                writer.writerow((path, CLASSES[truth[path]]))
        with transaction.atomic():
            _store_labels(dataset, truth)
            truth_refresh(dataset)
            os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    wrong = sum(1 for path, label in images.items() if truth[path] != label)
    return {"path": target, "images": len(truth), "wrong": wrong}


def _store_labels(dataset, truth):
    """Replace `dataset`'s TruthLabel rows with `truth` ({path: class code}) for the images it names."""
    TruthLabel.objects.filter(dataset=dataset).delete()
    ids = Image.objects.filter(dataset=dataset).values_list("path", "id")
    TruthLabel.objects.bulk_create((TruthLabel(dataset=dataset, image_id=pk, true_label=truth[path])
                                    for path, pk in ids.iterator(chunk_size=5000) if path in truth), batch_size=5000)


# The counts a decided image adds to (DatasetPanels' truth_ columns less known and wrong, which decisions never move).
DECISION_COUNTS = ("reviewed", "fixed_relabelled", "fixed_excluded", "kept_wrong", "relabelled_wrong",
                   "excluded_right")


def _decision_counts(original, label, status, true):
    """{count: 0 or 1} of one image with the given imported label, label, status and true label."""
    counts = dict.fromkeys(DECISION_COUNTS, 0)
    if status == Image.Status.UNREVIEWED:
        return counts
    counts["reviewed"] = 1
    was_wrong = true != original
    if status == Image.Status.EXCLUDED:
        counts["fixed_excluded" if was_wrong else "excluded_right"] = 1
    elif label == true:
        counts["fixed_relabelled"] = int(was_wrong)  # confirmed or relabelled back to a right label: nothing else
    elif status == Image.Status.CONFIRMED:
        counts["kept_wrong"] = 1
    else:
        counts["relabelled_wrong"] = 1
    return counts


def truth_refresh(dataset):
    """Recompute and store the panel's counts from `dataset`'s TruthLabel rows and images (one query over them), the
    panel row locked first. Returns the DatasetPanels row."""
    totals = dict.fromkeys(("known", "wrong", *DECISION_COUNTS), 0)
    rows = (Image.objects.filter(dataset=dataset, truth_label__isnull=False)
            .values_list("original_label", "label", "status", "truth_label__true_label"))
    with transaction.atomic():
        panels, _ = DatasetPanels.objects.select_for_update().get_or_create(dataset=dataset)
        for original, label, status, true in rows.iterator(chunk_size=5000):
            totals["known"] += 1
            totals["wrong"] += true != original
            for name, n in _decision_counts(original, label, status, true).items():
                totals[name] += n
        for name, n in totals.items():
            setattr(panels, f"truth_{name}", n)
        panels.truth_counted = True
        panels.save()
    return panels


def truth_on_label_changed(sender, *, image, change, **kwargs):
    """label_changed's receiver (connected in curation/apps.py), inside the change's transaction: moves the stored
    counts by this change's difference, where the image has a true label and the counts are stored (else nothing:
    the next read counts them). One query for an image without a true label, two with one."""
    true = TruthLabel.objects.filter(image_id=image.pk).values_list("true_label", flat=True).first()
    if true is None:
        return
    before = _decision_counts(image.original_label, change.old_label, change.old_status, true)
    after = _decision_counts(image.original_label, change.new_label, change.new_status, true)
    moves = {f"truth_{name}": F(f"truth_{name}") + (after[name] - before[name])
             for name in DECISION_COUNTS if after[name] != before[name]}
    if moves:
        DatasetPanels.objects.filter(dataset_id=image.dataset_id, truth_counted=True).update(**moves)


def truth_read(dataset):
    """{path: true class code} of `dataset`'s registered truth file, or None where none is registered."""
    path = truth_path(dataset)
    if not path.is_file():
        return None
    return _parse(path)


@dataclass(frozen=True)
class KnownTruth:
    """What the known-truth panel shows. "Wrong" compares an image's imported label with its true one."""

    queue_top: int  # N: the first N images of the review queue, in its scored order
    queue_scored: int  # images with a suspicion score (at most N of them are counted)
    queue_wrong: int  # of those first N, how many have wrong imported labels
    wrong_total: int  # wrong imported labels in the dataset
    base_rate: float  # wrong_total / images known: what N images picked at random would hold
    reviewed: int  # images with a standing decision
    fixed: int  # wrong labels relabelled to the truth or excluded
    fixed_relabelled: int
    fixed_excluded: int
    mistakes: int  # decisions that left or made a label wrong, or excluded a right one
    kept_wrong: int  # a wrong label confirmed
    relabelled_wrong: int  # relabelled to a class that is not the truth
    excluded_right: int  # an image whose label was right, excluded

    @property
    def queue_share(self):
        return self.queue_wrong / min(self.queue_top, self.queue_scored) if self.queue_scored else None

    @property
    def fixed_share(self):
        return self.fixed / self.wrong_total if self.wrong_total else None


def known_truth(*, dataset, n=QUEUE_TOP):
    """The known-truth panel's figures for `dataset`, or None where no truth file is registered: the stored counts
    (truth_refresh; counted and stored here the first time) and the queue's first n, a constant number of queries.

    The queue figure follows the review queue's order as scoring left it (most suspicious first, then by id),
    whatever has been decided since, so it says how good the queue is rather than how much of it is left."""
    if not truth_path(dataset).is_file():
        return None
    panels = DatasetPanels.objects.filter(dataset=dataset, truth_counted=True).first()
    if panels is None:
        with transaction.atomic():  # the row locked first: two first views at once count once
            panels, _ = DatasetPanels.objects.select_for_update().get_or_create(dataset=dataset)
            if not panels.truth_counted:
                if not TruthLabel.objects.filter(dataset=dataset).exists():
                    _store_labels(dataset, truth_read(dataset))  # registered before the labels were stored
                panels = truth_refresh(dataset)
    scored = Image.objects.filter(dataset=dataset, suspicion__isnull=False)
    top = scored.order_by("-suspicion", "id").values_list("original_label", "truth_label__true_label")[:n]
    queue_wrong = sum(1 for original, true in top if true is not None and true != original)
    c = {name: getattr(panels, f"truth_{name}") for name in ("known", "wrong", *DECISION_COUNTS)}
    return KnownTruth(
        queue_top=n, queue_scored=scored.count(), queue_wrong=queue_wrong,
        wrong_total=c["wrong"], base_rate=c["wrong"] / c["known"] if c["known"] else 0.0, reviewed=c["reviewed"],
        fixed=c["fixed_relabelled"] + c["fixed_excluded"], fixed_relabelled=c["fixed_relabelled"],
        fixed_excluded=c["fixed_excluded"], mistakes=c["kept_wrong"] + c["relabelled_wrong"] + c["excluded_right"],
        kept_wrong=c["kept_wrong"], relabelled_wrong=c["relabelled_wrong"], excluded_right=c["excluded_right"],
    )
