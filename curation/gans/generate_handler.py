"""The generate_images job: translate train-split images with a trained pair's generators, for augmented
retraining. Files are named after the generator and the source image, and rows are unique per (gan, source,
target), so a re-run after a crash adds what is missing and duplicates nothing.

The generators are the snapshot scoring uses (a curator's chosen epoch, else the last one). A direction whose
generator failed its quality check there (the dataset's classifier does not call its outputs the target class
clearly more often than their sources: curation.scoring.fusion.generator_works) generates nothing unless asked
with include_failing: its outputs still look like the source class, so labelling them with the target would add
wrong labels to the augmented run. A direction that was never checked (no classifier when the CycleGAN trained)
generates, and the result says it was unchecked.

The worker's side: only the job runner imports it (the registry names it). The parameters are
curation/gans/generate_params.py."""
import hashlib
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import transaction

from curation.gans.data import domain_arrays
from curation.gans.generators import load_generator
from curation.gans.snapshots import (
    DIRECTIONS,
    direction_labels,
    direction_name,
    snapshot_quality,
)
from curation.media import save_png
from curation.models import GanModel, GeneratedImage
from curation.scoring.fusion import generator_works
from gan.cyclegan import translate
from training.placement import pick_device

BATCH = 64


def generate_images_job(ctx):
    p = ctx.params
    gan = GanModel.objects.select_related("dataset").get(pk=p["gan"])
    epoch, quality = snapshot_quality(gan)
    device = pick_device()
    made, checks, skipped = {}, {}, []
    for k, direction in enumerate(DIRECTIONS):
        source, target = direction_labels(gan, direction)
        name = direction_name(gan, direction)
        works = generator_works(quality.get(direction))
        checks[name] = {None: "unchecked", True: "passed"}.get(works, "failed")
        if works is False and not p.get("include_failing"):
            made[name] = GeneratedImage.objects.filter(gan=gan, target_label=target).count()
            skipped.append(name)
            continue
        net, size = load_generator(gan, direction, epoch, device)
        items, images = domain_arrays(gan.dataset, source, size)
        rng = np.random.default_rng(p["seed"] + k)
        chosen = np.sort(rng.choice(len(items), min(p["n"], len(items)), replace=False))
        have = set(GeneratedImage.objects.filter(gan=gan, target_label=target).values_list("source_image_id", flat=True))
        todo = [i for i in chosen if items[i].id not in have]
        for start in range(0, len(todo), BATCH):
            idx = todo[start : start + BATCH]
            src = torch.from_numpy(images[idx]).permute(0, 3, 1, 2)
            out = translate(net, src.to(device)).cpu().permute(0, 2, 3, 1).numpy()
            rows = [_write(gan, direction, items[i], target, out[j]) for j, i in enumerate(idx)]
            with transaction.atomic():
                GeneratedImage.objects.bulk_create(rows, ignore_conflicts=True)
            ctx.progress((k + (start + len(idx)) / max(len(todo), 1)) / 2,
                         f"{direction}: {start + len(idx)} of {len(todo)} images")
        made[name] = GeneratedImage.objects.filter(gan=gan, target_label=target).count()
    # quality_check: per direction, "passed", "failed" (nothing generated unless include_failing) or "unchecked".
    result = {"gan": gan.pk, "epoch": epoch, "generated": made, "quality_check": checks,
              "sources_requested_per_direction": p["n"], "include_failing": bool(p.get("include_failing"))}
    # A job that generated nothing must not read as a plain success: the runner makes the warning its message.
    if len(skipped) == len(DIRECTIONS):
        result["warning"] = ("generated 0 images: both generators failed their quality check; pass include_failing "
                             "to generate anyway")
    elif skipped:
        result["warning"] = (f"generated 0 images for {skipped[0]}: its generator failed its quality check; pass "
                             f"include_failing to generate anyway")
    return result


def _write(gan, direction, item, target, pixels):
    rel = f"generated/{gan.pk}/{direction}/{item.id}.png"
    data = save_png(pixels, Path(settings.MEDIA_ROOT) / rel)
    return GeneratedImage(gan=gan, source_image_id=item.id, target_label=target, file=rel,
                          content_hash=hashlib.sha256(data).hexdigest())
