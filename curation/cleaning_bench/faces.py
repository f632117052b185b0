"""The benchmark's faces and their truth: made by make_synthetic_faces, or an existing folder in its layout
(`bench_cleaning --faces DIR`): DIR/labels.csv (path,label[,split]: the labels the benchmark imports) and
DIR/truth.csv (path,true_label[,...]: the truth it measures against), paths relative to DIR.

truth.csv may cover only part of labels.csv (a verified subset of a user's own images): the images without a row
there are imported, scored, trained on and shown to the simulated reviewers like any other, but left out of every
figure that needs the truth (detection, the review's precision, the oracle), and the report says how many.
Whether a label is wrong is read from the two files (true_label against label), never from truth.csv's `noisy`
column, which a user's file need not have.
"""
import csv
from dataclasses import dataclass
from pathlib import Path

from curation.cleaning_bench.plan import PlanError
from curation.cleaning_bench.reviewers import Truth
from training.labels import UnknownLabel, parse_label

SPLITS = ("train", "val", "test")


class FacesError(PlanError):
    """A --faces folder the benchmark cannot run on; the message names the file and its first bad row."""


@dataclass
class Faces:
    folder: Path
    labels: dict  # path -> (given class code, split or "")
    truth: dict  # path -> Truth, only the images truth.csv lists

    @property
    def missing(self):
        """Paths of labels.csv that truth.csv does not list."""
        return [p for p in self.labels if p not in self.truth]

    def summary(self):
        missing = self.missing
        known = [p for p in self.labels if p in self.truth]
        by_split = {s: sum(self.labels[p][1] == s for p in missing) for s in SPLITS}
        return {"images": len(self.labels), "with_truth": len(known), "without_truth": len(missing),
                "without_truth_by_split": by_split,
                "wrong_with_truth": sum(self.truth[p].noisy for p in known),
                "wrong_in_test": sum(self.truth[p].noisy for p in known if self.labels[p][1] == "test")}


def _rows(path, required):
    if not path.is_file():
        raise FacesError(f"{path}: no such file (--faces needs make_synthetic_faces' layout: labels.csv with "
                         f"path,label,split and truth.csv with path,true_label)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise FacesError(f"{path}: the header needs the columns {', '.join(required)}; missing "
                                 f"{', '.join(missing)} (header: {', '.join(reader.fieldnames or []) or 'none'})")
            yield from enumerate(reader, start=2)
    except UnicodeDecodeError:
        raise FacesError(f"{path} is not a UTF-8 CSV file") from None


def read_faces(folder):
    """Faces from `folder`, or FacesError naming the file and the first bad row: a missing file or column, an
    empty or repeated path, an unknown class, a split other than train/val/test, an image labels.csv names that
    is not there, a truth row for an image labels.csv does not list, or no truth for any image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacesError(f"--faces {folder}: no such folder")
    labels_csv, truth_csv = folder / "labels.csv", folder / "truth.csv"
    for required in (labels_csv, truth_csv):  # both named before any row is read
        if not required.is_file():
            list(_rows(required, ()))
    labels = {}
    for line, row in _rows(labels_csv, ("path", "label")):
        path = (row["path"] or "").strip()
        where = f"{labels_csv} line {line}"
        if not path:
            raise FacesError(f"{where}: empty path")
        if path in labels:
            raise FacesError(f"{where}: {path} is listed twice")
        try:
            code = parse_label(row["label"] or "")
        except UnknownLabel as exc:
            raise FacesError(f"{where}: {exc}") from None
        split = (row.get("split") or "").strip()
        if split not in ("", *SPLITS):
            raise FacesError(f"{where}: split must be train, val or test (or empty), not {split!r}")
        if not (folder / path).is_file():
            raise FacesError(f"{where}: {path} is not an image in {folder}")
        labels[path] = (code, split)
    if not labels:
        raise FacesError(f"{labels_csv} lists no image")
    truth = {}
    for line, row in _rows(truth_csv, ("path", "true_label")):
        path = (row["path"] or "").strip()
        where = f"{truth_csv} line {line}"
        if path not in labels:
            raise FacesError(f"{where}: {path or '(empty path)'} is not in labels.csv")
        if path in truth:
            raise FacesError(f"{where}: {path} is listed twice")
        try:
            code = parse_label(row["true_label"] or "")
        except UnknownLabel as exc:
            raise FacesError(f"{where}: {exc}") from None
        truth[path] = Truth(code, code != labels[path][0])
    if not truth:
        raise FacesError(f"{truth_csv} lists no image: the benchmark has nothing to measure against")
    return Faces(folder, labels, truth)

