"""Known truth: a dataset's true labels, where someone knows them (the demo's synthetic faces, a benchmark's).

A truth file is registered per dataset (`manage.py register_truth --dataset NAME PATH`) and stored as
DATA_DIR/truth/NAME.csv. It is read only to *show* how the product is doing (curation/pages/_known_truth.html):
how many of the review queue's first N images have wrong labels, and how many wrong labels reviewers have fixed.
No signal, score, queue or training job may read it: tests/curation/test_truth.py checks that no scoring,
classifier, CycleGAN or training module imports this one.

The file is a CSV with a header naming at least `path` (as the dataset's images know it) and `true_label` (a
class name); other columns (make_synthetic_faces' truth.csv has intensity and noisy) are ignored.
"""
import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from curation.models import Image
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
    # Written beside the target and renamed over it: a reader sees the old file or the new one, never half.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{dataset.name}.", suffix=".csv")
    try:
        os.chmod(tmp, 0o644)  # as any other file the product writes (mkstemp makes it private)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(REQUIRED_COLUMNS)
            for path in sorted(truth):
                writer.writerow((path, CLASSES[truth[path]]))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    wrong = sum(1 for path, label in images.items() if truth[path] != label)
    return {"path": target, "images": len(truth), "wrong": wrong}


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
    """The known-truth panel's figures for `dataset`, or None where no truth file is registered.

    The queue figure follows the review queue's order as scoring left it (most suspicious first, then by id),
    whatever has been decided since, so it says how good the queue is rather than how much of it is left."""
    truth = truth_read(dataset)
    if truth is None:
        return None
    images = Image.objects.filter(dataset=dataset)
    top = (images.filter(suspicion__isnull=False).order_by("-suspicion", "id")
           .values_list("path", "original_label")[:n])
    queue_wrong = sum(1 for path, original in top if path in truth and truth[path] != original)
    wrong_total = known = 0
    for path, original in images.values_list("path", "original_label").iterator():
        if path in truth:
            known += 1
            wrong_total += truth[path] != original
    decided = (images.exclude(status=Image.Status.UNREVIEWED)
               .values_list("path", "original_label", "label", "status"))
    reviewed = fixed_relabelled = fixed_excluded = kept_wrong = relabelled_wrong = excluded_right = 0
    for path, original, label, status in decided.iterator():
        if path not in truth:
            continue
        reviewed += 1
        true, was_wrong = truth[path], truth[path] != original
        if status == Image.Status.EXCLUDED:
            if was_wrong:
                fixed_excluded += 1
            else:
                excluded_right += 1
        elif label == true:
            fixed_relabelled += was_wrong  # confirmed or relabelled back to a right label: nothing to count
        elif status == Image.Status.CONFIRMED:
            kept_wrong += 1
        else:
            relabelled_wrong += 1
    return KnownTruth(
        queue_top=n, queue_scored=images.filter(suspicion__isnull=False).count(), queue_wrong=queue_wrong,
        wrong_total=wrong_total, base_rate=wrong_total / known if known else 0.0, reviewed=reviewed,
        fixed=fixed_relabelled + fixed_excluded, fixed_relabelled=fixed_relabelled, fixed_excluded=fixed_excluded,
        mistakes=kept_wrong + relabelled_wrong + excluded_right, kept_wrong=kept_wrong,
        relabelled_wrong=relabelled_wrong, excluded_right=excluded_right,
    )
