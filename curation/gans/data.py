"""Which images a CycleGAN sees, and the classifier that judges its outputs."""
from pathlib import Path

import numpy as np
from django.conf import settings

from curation.classifier.arrays import load_arrays
from curation.classifier.selection import Item
from curation.models import Image, Run


def domain_items(dataset, label):
    """Train-split images whose current label is `label` (relabels applied), leaving out excluded images."""
    rows = (Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, label=label)
            .exclude(status=Image.Status.EXCLUDED).order_by("id").values("id", "file", "content_hash", "path"))
    return [Item("image", r["id"], r["file"], r["content_hash"], label, r["path"]) for r in rows]


def domain_arrays(dataset, label, size):
    items = domain_items(dataset, label)
    images, _ = load_arrays(items, size)
    return items, images


def latest_classifier(dataset):
    """A function uint8 (N, S, S, 3) -> probabilities (N, C) from the dataset's latest finished run, or None."""
    run = Run.objects.filter(dataset=dataset, status=Run.Status.SUCCEEDED).exclude(checkpoint="").first()
    if run is None:
        return None, None
    import torch

    from training.engine import load_model, predict_proba
    from training.placement import pick_device, to_device_u8

    device = pick_device()
    checkpoint = torch.load(Path(settings.MEDIA_ROOT) / run.checkpoint, weights_only=True, map_location="cpu")
    model, cfg = load_model(checkpoint, device)

    def classify(images_u8):
        if images_u8.shape[1] != cfg.size:
            from PIL import Image as PILImage

            images_u8 = np.stack([np.asarray(PILImage.fromarray(im).resize((cfg.size, cfg.size))) for im in images_u8])
        return predict_proba(model, to_device_u8(images_u8, device), batch_size=256, device=device)

    return classify, run
