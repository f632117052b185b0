"""What a classifier run trains, validates and tests on.

- Baseline (neither switch): every train and val image with its original label.
- Reduced: train images with their current labels (relabels applied), minus excluded images and minus the
  doubtful images that no reviewer confirmed or relabelled. Which images are doubtful is the run's choice
  (DOUBTFUL): "ssim" (the published rule: flagged ambiguous by the CycleGAN SSIM), "classifier" (cleanlab found a
  label issue in the out-of-fold probabilities: confident learning's pruning), or "either".
- Augmented: adds generated images from train-split sources (not excluded) labelled with their target emotion.
- Calibrated relabels (relabel_above, curation/classifier/relabels.py): unreviewed train images at or above that
  suspicion whose classifier suggests another label train on the suggestion (their training target), and are kept
  even where --reduced would drop them as doubtful. The stored label is unchanged.

Every train image a reviewer confirmed or relabelled is trusted: a noise-robust method never down-weights it
(training/robust.py). The snapshot records, per image, its label, whether it was trusted and its training target.

The val and test splits are the same for every run of a dataset: all their images with their original labels.
No filter, relabel or generated image touches them, so runs are compared on identical sets. The one change: a test
image a curator excluded (a leak, curation/duplicates/leaks.py) leaves the test split, which then gets a new hash.
A val image a reviewer confirmed or relabelled is marked trusted, with its reviewed label as its target: when
enough exist, early stopping and the kept epoch are chosen on them alone (curation/classifier/handler.py).
"""
import csv
import hashlib
import io
from dataclasses import dataclass, field

from curation.models import GeneratedImage, Image
from training.labels import CLASSES


@dataclass
class Item:
    kind: str  # "image" or "generated"
    id: int
    file: str  # relative to MEDIA_ROOT
    content_hash: str
    label: int
    path: str  # what a person recognises: the image's dataset path, or the generated file
    trusted: bool = False  # a reviewer confirmed or relabelled it
    target: int = None  # what training fits it to: the label, or a calibrated relabel's suggestion

    def __post_init__(self):
        if self.target is None:
            self.target = self.label


@dataclass
class Selection:
    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    test: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def snapshot_csv(self):
        """The exact (split, source, id, path, label, trusted, target) rows of this selection, in a stable order."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["split", "source", "id", "path", "label", "trusted", "target"])
        for split in ("train", "val", "test"):
            for item in sorted(getattr(self, split), key=lambda i: (i.kind, i.id)):
                writer.writerow([split, item.kind, item.id, item.path, CLASSES[item.label], int(item.trusted),
                                 CLASSES[item.target]])
        return buf.getvalue()

    def snapshot_hash(self):
        return hashlib.sha256(self.snapshot_csv().encode()).hexdigest()

    def test_split_hash(self):
        rows = sorted((i.id, i.label) for i in self.test)
        return hashlib.sha256(repr(rows).encode()).hexdigest()


# What --reduced drops when no reviewer decided the image: the flags behind each choice.
# "none": only what reviewers excluded is dropped (the current labels of everything else: a review round's refit).
DOUBTFUL = {"ssim": ("flagged",), "classifier": ("classifier_flagged",), "either": ("flagged", "classifier_flagged"),
            "none": ()}


TRUSTED = (Image.Status.CONFIRMED, Image.Status.RELABELLED)


def _item(row, label, target=None):
    return Item("image", row["id"], row["file"], row["content_hash"], label, row["path"],
                trusted=row["split"] in (Image.Split.TRAIN, Image.Split.VAL) and row["status"] in TRUSTED,
                target=target)


def _calibrated_target(row, relabel_above):
    """The suggestion an unreviewed train image trains on under a calibrated-relabel rule, else None."""
    suggested = row["classifier_suggested_label"]
    if (relabel_above is None or row["status"] != Image.Status.UNREVIEWED or suggested is None
            or row["suspicion"] is None or row["suspicion"] < relabel_above or suggested == row["original_label"]):
        return None
    return suggested


def select_training_data(*, dataset, reduced=False, augmented=False, doubtful="ssim", relabel_above=None):
    flags = DOUBTFUL[doubtful]
    fields = ("id", "file", "content_hash", "path", "split", "original_label", "label", "status", "flagged",
              "classifier_flagged", "suspicion", "classifier_suggested_label")
    sel = Selection()
    dropped_excluded = dropped_flagged = relabelled = 0
    for row in Image.objects.filter(dataset=dataset).order_by("id").values(*fields).iterator():
        if row["split"] == Image.Split.VAL:  # a reviewed val image validates on its reviewed label
            sel.val.append(_item(row, row["original_label"], row["label"] if row["status"] in TRUSTED else None))
            continue
        if row["split"] != Image.Split.TRAIN:
            if row["status"] != Image.Status.EXCLUDED:
                sel.test.append(_item(row, row["original_label"]))
            continue
        suggestion = _calibrated_target(row, relabel_above)
        if not reduced:
            sel.train.append(_item(row, row["original_label"], suggestion))
            continue
        if row["status"] == Image.Status.EXCLUDED:
            dropped_excluded += 1
            continue
        if row["status"] == Image.Status.UNREVIEWED and suggestion is None and any(row[f] for f in flags):
            dropped_flagged += 1
            continue
        relabelled += row["label"] != row["original_label"]
        sel.train.append(_item(row, row["label"], suggestion))
    generated = 0
    if augmented:
        rows = (
            GeneratedImage.objects.filter(gan__dataset=dataset, source_image__split=Image.Split.TRAIN)
            .exclude(source_image__status=Image.Status.EXCLUDED)
            .order_by("id")
            .values("id", "file", "content_hash", "target_label")
        )
        for g in rows.iterator():
            sel.train.append(Item("generated", g["id"], g["file"], g["content_hash"], g["target_label"], g["file"]))
            generated += 1
    sel.counts = {
        "train": len(sel.train), "val": len(sel.val), "test": len(sel.test),
        "dropped_excluded": dropped_excluded, "dropped_flagged_unconfirmed": dropped_flagged,
        "relabelled": relabelled, "generated": generated, **({"doubtful": doubtful} if reduced else {}),
        "trusted": sum(i.trusted for i in sel.train),
        "val_reviewed": sum(i.trusted for i in sel.val),
        # A calibrated relabel is the one way an item's target differs from its label.
        **({"relabelled_calibrated": sum(i.target != i.label for i in sel.train), "relabel_above": relabel_above}
           if relabel_above is not None else {}),
    }
    return sel
