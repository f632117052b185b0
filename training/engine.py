"""The training loop: train_one_epoch, evaluate, predict_proba, and fit() with early stopping and per-epoch
checkpoints that a re-run resumes from. Data arrives as uint8 arrays (N, S, S, 3) from the tensor cache (memory-
mapped) and is either moved to the device once, or streamed to it batch by batch: training/placement.py."""
import copy
import math
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import augment_batch
from training.config import TrainConfig
from training.init import init_weights
from training.models import build_model
from training.placement import Placement, as_source, choose_placement, pick_device, place_images
from training.robust import ELRMemory, batch_loss, corruption_tensor, loss_config, make_state


def seed_everything(seed, deterministic=False):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


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


def train_one_epoch(model, optimizer, scheduler, x_u8, y, *, cfg, device, generator, loss_weight, on_step=None,
                    trusted=None, state=None):
    """One pass over (x_u8, y) in a seeded random order. on_step(step, steps), if given, runs after every batch
    (progress, cancellation); it must not synchronise with the device. trusted: a bool tensor like y (reviewed
    labels, which the robust losses never down-weight) or None; state: robust.make_state's object or None."""
    model.train()
    source = as_source(x_u8, device)
    n = len(source)
    steps = max(1, math.ceil((n - 1) / cfg.batch_size))
    order = torch.randperm(n, device=device, generator=generator)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    # Batches of at least two images (batch norm needs two), the last image left out as it always was.
    bounds = [(a, min(a + cfg.batch_size, n)) for a in range(0, n - 1, cfg.batch_size)]
    bounds = [(a, b) for a, b in bounds if b - a >= 2]
    for (start, stop), batch in zip(bounds, source.batches(order, bounds)):
        idx = order[start:stop]
        x = as_input(batch, cfg.channels_last)
        if cfg.augment:
            x = augment_batch(x, generator)
        target = y[idx]
        with _autocast(device, cfg.amp):
            logits, loss = batch_loss(model, x, target, cfg=cfg, weight=loss_weight, generator=generator,
                                      trusted=None if trusted is None else trusted[idx], index=idx, state=state)
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
    """x_u8: a (N, 3, S, S) uint8 tensor on the device, a placed DeviceImages / StreamedImages, or a host array
    (N, S, S, 3) placed by choose_placement."""
    model.eval()
    device = torch.device(device)
    source = as_source(x_u8, device)
    n = len(source)
    bounds = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    out = []
    for batch in source.batches(None, bounds):
        with _autocast(device, amp):
            out.append(model(as_input(batch, channels_last)).float())
    return torch.cat(out) if out else torch.empty(0, device=device)


def predict_proba(model, x_u8, *, batch_size, device, amp=True, channels_last=True, index=None, mode=None):
    """Softmax probabilities (N, C) as numpy, in the order of x_u8 (rows `index` of it, when given; no
    augmentation). A host array is placed by choose_placement (`mode` forces device or stream)."""
    if index is not None or mode is not None:
        x_u8, _ = place_images(x_u8, device, index=index, mode=mode)
    logits = predict_logits(model, x_u8, batch_size=batch_size, device=device, amp=amp, channels_last=channels_last)
    return torch.softmax(logits, 1).cpu().numpy()


def last_linear(model):
    """The model's last linear layer (its class scores): the embedding of predict_proba_and_features is its input."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not layers:
        raise TypeError(f"{type(model).__name__} has no linear layer to take an embedding from")
    return layers[-1]


def predict_proba_and_features(model, x_u8, *, batch_size, device, amp=True, channels_last=True, index=None,
                               mode=None):
    """(softmax probabilities (N, C) float32, penultimate-layer embeddings (N, D) float32) as numpy, from one pass
    in the order of predict_proba. The embedding is what the model's last linear layer reads (global-pooled
    features for small_cnn and resnet18, the last dense layer's output for seed_cnn), taken by a hook on it."""
    head = last_linear(model)
    seen = []
    hook = head.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0].detach().float().cpu()))
    try:
        if index is not None or mode is not None:
            x_u8, _ = place_images(x_u8, device, index=index, mode=mode)
        logits = predict_logits(model, x_u8, batch_size=batch_size, device=device, amp=amp,
                                channels_last=channels_last)
    finally:
        hook.remove()
    width = head.in_features
    features = torch.cat(seen).reshape(-1, width) if seen else torch.empty(0, width)
    return torch.softmax(logits, 1).cpu().numpy(), features.numpy()


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
    placement: Placement = None  # where the training images were while it ran, and why
    init: dict = None  # a pretrained start (training/init.py): tensors loaded and skipped; None: a random draw


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


def fit(cfg: TrainConfig, x_train, y_train, x_val, y_val, *, device=None, resume=None, on_epoch=None, on_step=None,
        train_index=None, mode=None, share=None, trusted=None, init=None, corruption=None):
    """Train a model; returns FitResult with the best weights (highest validation accuracy, or lowest validation
    loss: cfg.monitor), among the epochs from cfg.min_epochs on (early stopping waits for it too).

    x_*: uint8 arrays (N, S, S, 3), memory-mapped or not; y_*: int arrays. `train_index`: train on those rows of
    x_train / y_train only (an out-of-fold fit), without copying them out. The images go to the device whole or
    stream (choose_placement; `mode` forces one, `share` is the device share): the same weights either way, and
    FitResult.placement says which. `resume`: a checkpoint dict from an earlier on_epoch call. `init`: weights to
    start from (training/init.py: every tensor whose name and shape fit; FitResult.init says how many). `trusted`:
    bools like y_train, the labels a reviewer decided (the robust losses take them as given). `corruption`: robust
    glc's matrix C[true, given] (training.robust.estimate_corruption), required by it and ignored by the others.
    `on_epoch(checkpoint)` is called after every epoch with a dict of tensors and primitives (save it to resume);
    it may raise to stop training (cancellation). `on_step(epoch, step, steps)` runs after every batch.
    """
    cfg.validate()
    device = pick_device() if device is None else torch.device(device)
    if cfg.num_threads and device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed, cfg.deterministic)
    model = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device)
    # A pretrained start (init: weights as torch.load gave them); a resumed run takes its own checkpoint instead.
    init_report = init_weights(model, init, arch=cfg.arch) if init is not None and resume is None else None
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    y_train = np.asarray(y_train) if train_index is None else np.asarray(y_train)[np.asarray(train_index)]
    if trusted is not None:  # a reviewer decided these labels: the robust losses take them as given
        trusted = np.asarray(trusted, dtype=bool)
        trusted = torch.as_tensor(trusted if train_index is None else trusted[np.asarray(train_index)], device=device)
    train_cfg = loss_config(cfg, trusted)  # every label trusted: plain cross-entropy, whatever cfg.robust says
    if train_cfg.robust == "glc":  # refused before any image is placed when C is missing or malformed
        corruption = corruption_tensor(corruption, cfg.num_classes, device)
    n_train = len(x_train) if train_index is None else len(train_index)
    per_image = int(np.prod(x_train.shape[1:], dtype=np.int64))
    placement = choose_placement((n_train + len(x_val)) * per_image, device, mode=mode, share=share)
    xt, _ = place_images(x_train, device, index=train_index, placement=placement)
    xv, _ = place_images(x_val, device, placement=placement)
    yt = torch.as_tensor(y_train, dtype=torch.long, device=device)
    yv = torch.as_tensor(np.asarray(y_val), dtype=torch.long, device=device)
    steps = max(1, math.ceil((len(xt) - 1) / cfg.batch_size))
    optimizer, scheduler = _make_optimizer(model, cfg, steps)
    weight = class_weights(y_train, cfg.num_classes).to(device) if cfg.class_balance == "weights" else None
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    if train_cfg.robust == "dividemix":  # two networks and their own loop (training/dividemix.py)
        from training.dividemix import fit_dividemix

        return fit_dividemix(train_cfg, model, xt, yt, xv, yv, device=device, generator=generator, trusted=trusted,
                             init=init if resume is None else None, resume=resume, on_epoch=on_epoch,
                             on_step=on_step, placement=placement, init_report=init_report,
                             loop=sys.modules[__name__])
    state = make_state(train_cfg, len(xt), device, corruption)  # ELR's per-image targets, GLC's matrix

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
        if isinstance(state, ELRMemory) and resume.get("robust_state") is not None:
            state.targets.copy_(resume["robust_state"])
        start_epoch = resume["epoch"] + 1

    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.early_stopping_patience and epoch - best["epoch"] > cfg.early_stopping_patience and best["epoch"] \
                and epoch > cfg.min_epochs:
            stopped_early = True
            break
        step_hook = (lambda step, steps, e=epoch: on_step(e, step, steps)) if on_step is not None else None
        metrics = train_one_epoch(model, optimizer, scheduler, xt, yt, cfg=train_cfg, device=device,
                                  generator=generator, loss_weight=weight, on_step=step_hook, trusted=trusted, state=state)
        val = evaluate(model, xv, yv, cfg=cfg, device=device)
        metrics.update(epoch=epoch, val_loss=val["loss"], val_acc=val["acc"], lr=optimizer.param_groups[0]["lr"])
        history.append(metrics)
        if epoch >= cfg.min_epochs and (len(yv) == 0 or improved(val, best, cfg.monitor)):
            best = {"val_loss": val["loss"], "val_acc": val["acc"], "epoch": epoch,
                    "model": {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}}
        if on_epoch is not None:
            on_epoch({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "epoch": epoch, "history": history, "best": best,
                "config": cfg.to_dict(), "robust_state": state.targets if isinstance(state, ELRMemory) else None,
            })
    if best["model"] is not None:
        model.load_state_dict(best["model"])
    return FitResult(model=model, history=history, best_epoch=best["epoch"], stopped_early=stopped_early,
                     placement=placement, init=init_report)


def out_of_fold_splits(labels, folds, seed):
    """[(fit rows, held-out rows)] of an out-of-fold run: `folds` stratified folds of `labels`, shuffled with the
    run's seed, so that the same run (or a benchmark of it) holds out the same images."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


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
