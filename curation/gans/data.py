"""Which images a CycleGAN sees (the classifier that judges its outputs is the train_cyclegan handler's:
curation/gans/handler.py latest_classifier)."""
from curation.classifier.arrays import load_arrays
from curation.classifier.selection import Item
from curation.models import Image


def domain_items(dataset, label):
    """Train-split images whose current label is `label` (relabels applied), leaving out excluded images."""
    rows = (Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, label=label)
            .exclude(status=Image.Status.EXCLUDED).order_by("id").values("id", "file", "content_hash", "path"))
    return [Item("image", r["id"], r["file"], r["content_hash"], label, r["path"]) for r in rows]


def domain_arrays(dataset, label, size):
    items = domain_items(dataset, label)
    images, _ = load_arrays(items, size)
    return items, images
