"""The training loop: train_one_epoch, evaluate, predict_proba, and fit() with early stopping and per-epoch
checkpoints that a re-run resumes from. Data arrives as uint8 arrays (N, S, S, 3) from the tensor cache and is
moved to the device once; batches are sliced there and augmented there."""
import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import augment_batch
from training.config import TrainConfig
from training.models import build_model
from training.robust import batch_loss


def pick_device(name=None):
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed, deterministic=False):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def to_device_u8(images, device):
    """(N, S, S, 3) uint8 numpy -> (N, 3, S, S) uint8 tensor on device (kept as bytes: 4x smaller than float)."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)


def as_input(batch_u8, channels_last):
    x = batch_u8.float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def _autocast(device, enabled):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def class_weights(labels, num_classes):
    """Balanced weights n / (C * n_c); classes absent from the data get 0."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def train_one_epoch(model, optimizer, scheduler, x_u8, y, *, cfg, device, generator, loss_weight, on_step=None):
    """One pass over (x_u8, y) in a seeded random order. on_step(step, steps), if given, runs after every batch
    (progress, cancellation); it must not synchronise with the device."""
    model.train()
    n = x_u8.shape[0]
    steps = max(1, math.ceil((n - 1) / cfg.batch_size))
    order = torch.randperm(n, device=device, generator=generator)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for start in range(0, n - 1, cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        if idx.numel() < 2:  # batch norm needs two samples
            break
        x = as_input(x_u8[idx], cfg.channels_last)
        if cfg.augment:
            x = augment_batch(x, generator)
        target = y[idx]
        with _autocast(device, cfg.amp):
            logits, loss = batch_loss(model, x, target, cfg=cfg, weight=loss_weight, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * idx.numel()
        correct += (logits.argmax(1) == target).sum()
        seen += idx.numel()
        if on_step is not None:
            on_step(start // cfg.batch_size + 1, steps)
    return {"train_loss": float(total_loss) / max(seen, 1), "train_acc": float(correct) / max(seen, 1)}


@torch.no_grad()
def predict_logits(model, x_u8, *, batch_size, device, amp=True, channels_last=True):
    model.eval()
    out = []
    for start in range(0, x_u8.shape[0], batch_size):
        with _autocast(device, amp):
            out.append(model(as_input(x_u8[start : start + batch_size], channels_last)).float())
    return torch.cat(out) if out else torch.empty(0, device=device)


def predict_proba(model, x_u8, *, batch_size, device, amp=True, channels_last=True):
    """Softmax probabilities (N, C) as numpy, in the order of x_u8 (no augmentation)."""
    logits = predict_logits(model, x_u8, batch_size=batch_size, device=device, amp=amp, channels_last=channels_last)
    return torch.softmax(logits, 1).cpu().numpy()


def evaluate(model, x_u8, y, *, cfg, device):
    logits = predict_logits(model, x_u8, batch_size=cfg.batch_size * 2, device=device, amp=cfg.amp,
                            channels_last=cfg.channels_last)
    loss = F.cross_entropy(logits, y).item() if len(y) else float("nan")
    acc = (logits.argmax(1) == y).float().mean().item() if len(y) else float("nan")
    return {"loss": loss, "acc": acc}


@dataclass
class FitResult:
    model: torch.nn.Module  # with the best epoch's weights loaded
    history: list = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def _make_optimizer(model, cfg, steps_per_epoch):
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = None
    if cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch)
    return opt, sched


def improved(val, best, monitor):
    """Is this epoch's validation ({"loss", "acc"}) better than the best so far? By accuracy (ties broken by the
    lower loss) or by loss alone."""
    if monitor == "val_loss":
        return val["loss"] < best["val_loss"]
    acc = best.get("val_acc", -math.inf)
    return val["acc"] > acc or (val["acc"] == acc and val["loss"] < best["val_loss"])


def fit(cfg: TrainConfig, x_train, y_train, x_val, y_val, *, device=None, resume=None, on_epoch=None, on_step=None):
    """Train a model; returns FitResult with the best weights (highest validation accuracy, or lowest validation
    loss: cfg.monitor).

    x_*: uint8 arrays (N, S, S, 3); y_*: int arrays. `resume`: a checkpoint dict from an earlier on_epoch call.
    `on_epoch(checkpoint)` is called after every epoch with a dict of tensors and primitives (save it to resume);
    it may raise to stop training (cancellation). `on_step(epoch, step, steps)` runs after every batch.
    """
    cfg.validate()
    device = pick_device() if device is None else torch.device(device)
    if cfg.num_threads and device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed, cfg.deterministic)
    model = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    xt, yt = to_device_u8(x_train, device), torch.as_tensor(np.asarray(y_train), dtype=torch.long, device=device)
    xv, yv = to_device_u8(x_val, device), torch.as_tensor(np.asarray(y_val), dtype=torch.long, device=device)
    steps = max(1, math.ceil((len(xt) - 1) / cfg.batch_size))
    optimizer, scheduler = _make_optimizer(model, cfg, steps)
    weight = class_weights(y_train, cfg.num_classes).to(device) if cfg.class_balance == "weights" else None
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    history, best, start_epoch = [], {"val_loss": math.inf, "epoch": 0, "model": None}, 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None and resume.get("scheduler"):
            scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"].cpu() if device.type == "cpu" else resume["generator"])
        # Dropout draws from the global generators: restore them too, so a resumed run is the same run.
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        history, best = list(resume["history"]), dict(resume["best"])
        start_epoch = resume["epoch"] + 1

    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.early_stopping_patience and epoch - best["epoch"] > cfg.early_stopping_patience and best["epoch"]:
            stopped_early = True
            break
        step_hook = (lambda step, steps, e=epoch: on_step(e, step, steps)) if on_step is not None else None
        metrics = train_one_epoch(model, optimizer, scheduler, xt, yt, cfg=cfg, device=device,
                                  generator=generator, loss_weight=weight, on_step=step_hook)
        val = evaluate(model, xv, yv, cfg=cfg, device=device)
        metrics.update(epoch=epoch, val_loss=val["loss"], val_acc=val["acc"], lr=optimizer.param_groups[0]["lr"])
        history.append(metrics)
        if len(yv) == 0 or improved(val, best, cfg.monitor):
            best = {"val_loss": val["loss"], "val_acc": val["acc"], "epoch": epoch,
                    "model": {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}}
        if on_epoch is not None:
            on_epoch({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "epoch": epoch, "history": history, "best": best,
                "config": cfg.to_dict(),
            })
    if best["model"] is not None:
        model.load_state_dict(best["model"])
    return FitResult(model=model, history=history, best_epoch=best["epoch"], stopped_early=stopped_early)


def best_weights_checkpoint(cfg, result):
    """The checkpoint kept with a run: the best weights, config and history (tensors and primitives only)."""
    return {"model": copy.deepcopy({k: v.cpu() for k, v in result.model.state_dict().items()}),
            "config": cfg.to_dict(), "best_epoch": result.best_epoch, "history": result.history}


def load_model(checkpoint, device=None):
    """Rebuild a model from best_weights_checkpoint() output (loaded with torch.load(weights_only=True))."""
    cfg = TrainConfig.from_dict(checkpoint["config"])
    device = pick_device() if device is None else torch.device(device)
    model = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device)
    model.load_state_dict(checkpoint["model"])
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval(), cfg
