"""The train_cyclegan job: a CycleGAN between two emotions of a dataset's train split, one GanModel row.

Per epoch it stores the losses and a sample grid; at snapshot epochs also the generators' weights and the quality
instrument: for each direction, the rate at which the dataset's latest classifier calls the generated images the
target emotion (beside its rate on the sources themselves) and their mean SSIM to the source. The training state
is checkpointed every epoch; a re-run after a crash resumes from it.

The worker's side: only the job runner imports it (the registry names it). The parameters are
curation/gans/params.py.
"""
import logging
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage

from curation.gans.data import domain_arrays
from curation.jobs.errors import JobCancelled, JobLost
from curation.media import media_rel, save_png, save_torch
from curation.models import GanModel, Run
from curation.selectors import dataset_resolve
from gan.config import make_config
from gan.cyclegan import CycleGAN, sample_grid
from gan.quality import quality
from training.engine import load_model, predict_proba
from training.placement import choose_placement, pick_device, place_images, to_device_u8
from training.labels import CLASSES, parse_label

log = logging.getLogger(__name__)
QUALITY_SAMPLES = 256


def snapshot_epochs(total):
    """Epochs whose generators are kept (a curator may pick one for scoring): about ten, and the last."""
    step = max(1, total // 10)
    return sorted({e for e in range(step, total + 1, step)} | {total})


def train_cyclegan_job(ctx):
    p = ctx.params
    dataset = dataset_resolve(name=p["dataset"])
    a, b = (parse_label(x) for x in p["pair"])
    cfg = make_config(p["profile"], **{k: p.get(k) for k in ("epochs", "epochs_decay", "size", "batch_size", "seed")})
    if ctx.state.get("gan_id"):
        gan = GanModel.objects.get(pk=ctx.state["gan_id"])
    else:
        with transaction.atomic():
            gan = GanModel.objects.create(dataset=dataset, source_label=a, target_label=b, job_id=ctx.job_id,
                                          profile=p["profile"], config=cfg.to_dict())
            ctx.save_state({"gan_id": gan.pk})
    try:
        return _train(ctx, gan, cfg)
    except (JobCancelled, JobLost) as exc:
        if isinstance(exc, JobCancelled):
            GanModel.objects.filter(pk=gan.pk).update(status=GanModel.Status.CANCELLED, finished_at=timezone.now())
        raise
    except Exception as exc:
        GanModel.objects.filter(pk=gan.pk).update(status=GanModel.Status.FAILED, error=str(exc),
                                                  finished_at=timezone.now())
        raise


def latest_classifier(dataset):
    """A function uint8 (N, S, S, 3) -> probabilities (N, C) from the dataset's latest finished run, or None."""
    run = Run.objects.filter(dataset=dataset, status=Run.Status.SUCCEEDED).exclude(checkpoint="").first()
    if run is None:
        return None, None
    device = pick_device()
    checkpoint = torch.load(Path(settings.MEDIA_ROOT) / run.checkpoint, weights_only=True, map_location="cpu")
    model, cfg = load_model(checkpoint, device)

    def classify(images_u8):
        if images_u8.shape[1] != cfg.size:
            images_u8 = np.stack([np.asarray(PILImage.fromarray(im).resize((cfg.size, cfg.size))) for im in images_u8])
        return predict_proba(model, to_device_u8(images_u8, device), batch_size=256, device=device)

    return classify, run


def _train(ctx, gan, cfg):
    device = pick_device()
    folder = Path(settings.MEDIA_ROOT) / "gans" / str(gan.pk)
    ctx.progress(0.0, "decoding images", force=True)
    items_a, A = domain_arrays(gan.dataset, gan.source_label, cfg.size)
    items_b, B = domain_arrays(gan.dataset, gan.target_label, cfg.size)
    model = CycleGAN(cfg, device)
    checkpoint = folder / "last.pt"
    if checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint, weights_only=True, map_location="cpu"))
        log.info("resuming CycleGAN %s from epoch %s", gan.pk, model.epoch)
    # Both domains on the device whole, or streamed to it batch by batch (training.placement.choose_placement).
    placement = choose_placement(A.nbytes + B.nbytes, device)
    log.info("CycleGAN %s: tensor cache %s", gan.pk, placement)
    ctx.progress(0.0, f"tensor cache: {placement}", force=True)
    A_dev, _ = place_images(A, device, placement=placement)
    B_dev, _ = place_images(B, device, placement=placement)
    rng = np.random.default_rng(cfg.seed)
    fixed_a = A_dev[np.sort(rng.choice(len(A), min(4, len(A)), replace=False))]
    fixed_b = B_dev[np.sort(rng.choice(len(B), min(4, len(B)), replace=False))]
    quality_a = A[np.sort(rng.choice(len(A), min(QUALITY_SAMPLES, len(A)), replace=False))]
    quality_b = B[np.sort(rng.choice(len(B), min(QUALITY_SAMPLES, len(B)), replace=False))]
    classify, run = latest_classifier(gan.dataset)
    keep = snapshot_epochs(cfg.total_epochs)
    names = f"{CLASSES[gan.source_label]}<->{CLASSES[gan.target_label]}"
    total = cfg.total_epochs
    GanModel.objects.filter(pk=gan.pk).update(
        n_source=len(A), n_target=len(B), classifier_run=run)
    while model.epoch < total:
        epoch = model.epoch + 1

        def on_step(step, steps, epoch=epoch):
            ctx.progress(((epoch - 1) + step / steps) / total, f"{names}: epoch {epoch}/{total}, step {step}/{steps}")

        losses = model.train_epoch(A_dev, B_dev, on_step=on_step)
        grid = folder / "samples" / f"epoch{epoch:04d}.png"
        save_png(sample_grid(model, fixed_a, fixed_b), grid)
        losses["samples"] = media_rel(grid)
        if epoch in keep:
            snap = folder / "generators" / f"epoch{epoch:04d}.pt"
            save_torch({"G_A": model.G_A.state_dict(), "G_B": model.G_B.state_dict(), "epoch": epoch,
                         "config": cfg.to_dict()}, snap)
            losses["generators"] = media_rel(snap)
            losses["quality"] = {
                "AB": quality(model, "AB", quality_a, gan.target_label, classify),
                "BA": quality(model, "BA", quality_b, gan.source_label, classify),
            }
        model.history[-1] = losses
        save_torch(model.state_dict(), checkpoint)
        GanModel.objects.filter(pk=gan.pk).update(epoch=epoch, losses=model.history, checkpoint=media_rel(checkpoint))
        ctx.progress(epoch / total, f"{names}: epoch {epoch}/{total} cycle {losses['cycle']:.3f}", force=True)
    last = model.history[-1]
    GanModel.objects.filter(pk=gan.pk).update(status=GanModel.Status.SUCCEEDED, finished_at=timezone.now())
    return {"gan": gan.pk, "pair": [CLASSES[gan.source_label], CLASSES[gan.target_label]], "epochs": model.epoch,
            "final_losses": {k: v for k, v in last.items() if isinstance(v, float)}, "quality": last.get("quality"),
            "cache": placement.to_dict()}
