"""The `pretrain_ssl` job: self-supervised pretraining (SimCLR or VICReg, training/ssl.py) of the classifier's
backbone on every image of a dataset but its test split's, labels unread. The result is a weights file that
`train_classifier --init ssl:JOB_ID` (or `--init PATH`) takes.

The weights are written to a temporary file and renamed into place as the job's last step, and `ssl:ID` names
only a pretraining whose job succeeded: a cancelled, failed or unfinished pretraining gives `--init` nothing. A
cancelled job also removes its folder (the per-epoch resume checkpoint, which is no state dict `--init` could
load anyway); a job the reaper re-queues keeps it and resumes from its last epoch.

The worker's side: only the job runner imports it (the registry names it). The parameters are
curation/classifier/pretrain_params.py.
"""
import logging
import shutil
from pathlib import Path

from django.conf import settings

from curation.classifier.arrays import load_arrays
from curation.classifier.pretrain_params import pretrain_images, ssl_config
from curation.classifier.selection import Item
from curation.jobs.errors import JobCancelled
from curation.media import load_resume, media_rel, save_torch
from training.placement import pick_device
from training.ssl import backbone_file, pretrain
from training.ssl_config import SSL_METHOD_NAMES

log = logging.getLogger(__name__)

WEIGHTS_NAME = "backbone.pt"
RESUME_NAME = "resume.pt"  # {"network": ..., "optimizer": ...}: no state dict at its top level, so --init refuses it


def pretrain_dir(job_id):
    return Path(settings.MEDIA_ROOT) / "ssl" / f"job{job_id}"


def pretrain_ssl_job(ctx):
    p = ctx.params
    cfg = ssl_config(p)
    items = [Item("image", pk, file, digest, label, path) for pk, file, digest, label, path in
             pretrain_images(p["dataset"]).values_list("id", "file", "content_hash", "original_label", "path")]
    folder = pretrain_dir(ctx.job_id)
    resume_path, weights = folder / RESUME_NAME, folder / WEIGHTS_NAME
    ctx.progress(0.0, f"decoding {len(items):,} images at {cfg.size} px (the test split left out)", force=True)
    x, _ = load_arrays(items, cfg.size)

    name = SSL_METHOD_NAMES[cfg.method]

    def on_step(epoch, step, steps):
        ctx.progress(0.99 * ((epoch - 1) + step / steps) / cfg.epochs,
                     f"{name}: epoch {epoch}/{cfg.epochs}, batch {step}/{steps}")

    def on_epoch(checkpoint):
        save_torch(checkpoint, resume_path)
        ctx.progress(0.99 * checkpoint["epoch"] / cfg.epochs,
                     f"{name}: epoch {checkpoint['epoch']} loss {checkpoint['history'][-1]['loss']:.3f}", force=True)

    try:
        result = pretrain(cfg, x, device=pick_device(), resume=load_resume(resume_path), on_epoch=on_epoch,
                          on_step=on_step)
        ctx.check()  # a cancel that came with the last batch stops here, before the weights exist
        save_torch(backbone_file(result, cfg), weights)  # a temporary file renamed into place: whole or absent
    except JobCancelled:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    resume_path.unlink(missing_ok=True)
    history = result.history
    return {"dataset": p["dataset"], "weights": media_rel(weights), "method": cfg.method, "arch": cfg.arch,
            "size": cfg.size, "images": result.images, "epochs": len(history), "loss_first": history[0]["loss"],
            "loss_last": history[-1]["loss"], "history": history, "init": f"ssl:{ctx.job_id}"}
