"""DivideMix (Li, Socher & Hoi, ICLR 2020), written here in plain PyTorch and numpy: TrainConfig.robust "dividemix".

Two networks, A and B, trained side by side:

1. Warm-up (cfg.dividemix_warmup epochs, at most all but the last: a run always divides): both are trained with plain cross-entropy on every label (the engine's own
   train_one_epoch), while they are still in the early-learning phase and fit the easy, mostly right labels first.
2. Then, every epoch, each network's per-image cross-entropy on the train split (no augmentation) is fitted with a
   two-component Gaussian mixture (gmm_clean_probability); an image's clean probability is the posterior of the
   low-loss component. Co-divide: network A is trained on B's division and B on A's, so that neither confirms its
   own mistakes (cfg.dividemix_split "co"; "mean" divides both by the mean of the two networks' losses).
3. Semi-supervised training on the division, MixMatch-style. Labelled set: the images whose clean probability
   exceeds cfg.dividemix_threshold, each with its label refined to w y + (1 - w) p (w its clean probability, p the
   network's mean prediction over two augmentations of it) and sharpened (temperature 0.5). Unlabelled set: the
   rest, their labels dropped and guessed by both networks (the mean of A's and B's predictions over two
   augmentations, sharpened). Labelled and unlabelled batches are mixed up together (lambda ~ Beta(4, 4), at least
   0.5, so each mix stays nearer its first image); the loss is soft cross-entropy on the mixed labelled part,
   plus cfg.dividemix_lambda_u (ramped up over 16 epochs after the warm-up) times the mean squared error on the
   mixed unlabelled part, plus a penalty that keeps the mean prediction near uniform over the classes.

Trusted labels (images a reviewer confirmed or relabelled): clean probability 1, always in the labelled set, their
target their given label exactly (labelled_target); they are never relabelled, dropped or
guessed. The Gaussian mixture is fitted on the untrusted images' losses only. (Mixup blends a trusted image and its
label with another image and its target in a batch, as it blends every labelled image: augmentation, not a
relabelling.) A run whose every label is trusted never gets here (robust.loss_config: plain cross-entropy).

Each network takes as many optimizer steps an epoch as a plain run (one per batch of cfg.batch_size labelled
images, with as many unlabelled ones beside them), under its own one-cycle schedule. DivideMix takes neither class
weights nor label smoothing after the warm-up. The kept model is one network: of the two, the one with the better
validation figure at the best epoch (the product stores and scores one classifier); the history records both.
"""
import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import augment_batch
from training.init import init_weights
from training.models import build_model

SHARPEN_T = 0.5
MIX_ALPHA = 4  # Beta(alpha, alpha) for mixup; an integer (drawn as a ratio of two gamma(alpha) sums)
RAMPUP_EPOCHS = 16

_observers = []


@contextlib.contextmanager
def observe_divisions(callback):
    """Call callback(epoch, clean_a, clean_b) with each epoch's clean probabilities (numpy, one per train image, from
    network A's and B's losses) while the block runs: what benchmarks/robust_regime.py measures the division by."""
    _observers.append(callback)
    try:
        yield
    finally:
        _observers.remove(callback)


def gmm_clean_probability(losses, *, iters=20, reg=5e-4):
    """The posterior of the lower-mean component of a two-component 1-D Gaussian mixture, fitted by EM to `losses`
    (scaled to [0, 1] first, as the authors do; reg is added to each variance, as sklearn's reg_covar)."""
    x = np.asarray(losses, dtype=np.float64)
    if len(x) == 0:
        return x
    lo, hi = x.min(), x.max()
    if hi - lo < 1e-12:
        return np.ones_like(x)  # one loss for all: nothing to divide
    x = (x - lo) / (hi - lo)
    mean = np.quantile(x, [0.25, 0.75])
    var = np.full(2, x.var() + reg)
    weight = np.array([0.5, 0.5])

    def posterior():
        log_p = -0.5 * ((x[:, None] - mean) ** 2 / var + np.log(2 * np.pi * var)) + np.log(weight)
        log_p -= log_p.max(1, keepdims=True)
        p = np.exp(log_p)
        return p / p.sum(1, keepdims=True)

    for _ in range(iters):
        resp = posterior()
        n = resp.sum(0) + 1e-12
        mean = (resp * x[:, None]).sum(0) / n
        var = (resp * (x[:, None] - mean) ** 2).sum(0) / n + reg
        weight = n / n.sum()
    return posterior()[:, int(np.argmin(mean))]


def sharpen(p, temperature=SHARPEN_T):
    p = p.clamp_min(1e-12) ** (1 / temperature)
    return p / p.sum(1, keepdim=True)


def labelled_target(one_hot, w, probs):
    """The labelled images' targets: the label refined by the network's mean prediction, w y + (1 - w) p, sharpened;
    an image with clean probability 1 (a trusted label) keeps its one-hot label exactly."""
    return torch.where(w >= 1, one_hot, sharpen(w * one_hot + (1 - w) * probs))


def beta_draw(generator, alpha=MIX_ALPHA, device=None):
    """One draw of Beta(alpha, alpha) (integer alpha) from the run's seeded generator: G1 / (G1 + G2), each G a sum
    of alpha unit exponentials."""
    u = torch.rand(2, alpha, generator=generator, device=device).clamp_min(1e-12)
    g = -torch.log(u).sum(1)
    return float(g[0] / g.sum())


def per_image_loss(model, source, y, *, cfg, device, loop):
    """(cross-entropy of each train image's given label as numpy, accuracy on the given labels), from one pass
    without augmentation in eval mode."""
    logits = loop.predict_logits(model, source, batch_size=cfg.batch_size * 2, device=device, amp=cfg.amp,
                            channels_last=cfg.channels_last)
    accuracy = float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")
    return F.cross_entropy(logits, y, reduction="none").cpu().numpy(), accuracy


def divide(loss, trusted):
    """Clean probabilities: the Gaussian mixture's on the untrusted images' losses, 1 on the trusted ones."""
    clean = np.ones(len(loss))
    untrusted = np.ones(len(loss), bool) if trusted is None else ~trusted
    clean[untrusted] = gmm_clean_probability(loss[untrusted])
    return clean


def _cycled(rows, count, generator, device):
    """`count` rows: seeded permutations of `rows` one after another (a tensor on the device)."""
    rows = torch.as_tensor(rows, device=device)
    out = [rows[torch.randperm(len(rows), device=device, generator=generator)]
           for _ in range(math.ceil(count / len(rows)))]
    return torch.cat(out)[:count]


def _mean_softmax(models, views):
    with torch.no_grad():
        return torch.stack([torch.softmax(m(v).float(), 1) for m in models for v in views]).mean(0)


def train_divided_epoch(net, peer, optimizer, scheduler, source, y, clean, *, cfg, device, generator, steps,
                        progress, loop, on_step=None):
    """One epoch of `net` on the division `clean` (clean probabilities, from `peer`'s losses): `steps` batches of
    cfg.batch_size labelled images and as many unlabelled ones. progress: epochs since the warm-up ended (the ramp
    of the unlabelled weight). Returns the epoch's mean labelled loss and its labelled / unlabelled sizes."""
    as_input = loop.as_input
    net.train()
    peer.eval()
    threshold = cfg.dividemix_threshold
    labelled = np.flatnonzero(clean > threshold)
    if len(labelled) < 2:  # the mixture put (almost) everything in the high-loss component: keep the surest half
        labelled = np.argsort(-clean)[: max(2, len(clean) // 2)]
    unlabelled = np.setdiff1d(np.arange(len(clean)), labelled)
    bs = cfg.batch_size
    lab_order = _cycled(labelled, steps * bs, generator, device)
    unl_order = _cycled(unlabelled, steps * bs, generator, device) if len(unlabelled) else None
    bounds = [(s * bs, (s + 1) * bs) for s in range(steps)]
    lab_batches = source.batches(lab_order, bounds)
    unl_batches = source.batches(unl_order, bounds) if unl_order is not None else iter([None] * steps)
    w_all = torch.as_tensor(clean, dtype=torch.float32, device=device)
    prior = torch.full((cfg.num_classes,), 1 / cfg.num_classes, device=device)

    def views(batch):
        x = as_input(batch, cfg.channels_last)
        return (augment_batch(x, generator), augment_batch(x, generator)) if cfg.augment else (x, x.clone())

    total = 0.0
    for s, ((a, b), lab_u8, unl_u8) in enumerate(zip(bounds, lab_batches, unl_batches)):
        rows = lab_order[a:b]
        x1, x2 = views(lab_u8)
        w = w_all[rows][:, None]
        target = F.one_hot(y[rows], cfg.num_classes).float()
        refined = labelled_target(target, w, _mean_softmax([net], (x1, x2)))
        inputs, targets = [x1, x2], [refined, refined]
        if unl_u8 is not None:
            u1, u2 = views(unl_u8)
            guessed = sharpen(_mean_softmax([net, peer], (u1, u2)))
            inputs += [u1, u2]
            targets += [guessed, guessed]
        inputs, targets = torch.cat(inputs), torch.cat(targets)
        lam = beta_draw(generator, device=device)
        lam = max(lam, 1 - lam)
        partner = torch.randperm(len(inputs), device=device, generator=generator)
        mixed = lam * inputs + (1 - lam) * inputs[partner]
        mixed_target = lam * targets + (1 - lam) * targets[partner]
        if cfg.channels_last:
            mixed = mixed.contiguous(memory_format=torch.channels_last)
        logits = net(mixed).float()
        nx = 2 * len(rows)
        loss_x = -(torch.log_softmax(logits[:nx], 1) * mixed_target[:nx]).sum(1).mean()
        loss = loss_x
        if unl_u8 is not None:
            ramp = min(max(progress + s / steps, 0.0) / RAMPUP_EPOCHS, 1.0)
            loss_u = ((torch.softmax(logits[nx:], 1) - mixed_target[nx:]) ** 2).mean()
            loss = loss + cfg.dividemix_lambda_u * ramp * loss_u
        mean_p = torch.softmax(logits, 1).mean(0)
        loss = loss + (prior * torch.log(prior / mean_p.clamp_min(1e-12))).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += float(loss_x.detach())
        if on_step is not None:
            on_step(s + 1, steps)
    return {"loss_x": total / max(steps, 1), "labelled": len(labelled), "unlabelled": len(unlabelled)}


def fit_dividemix(cfg, model, xt, yt, xv, yv, *, device, generator, trusted=None, init=None, resume=None,
                  on_epoch=None, on_step=None, placement=None, init_report=None, loop):
    """engine.fit's loop for robust "dividemix" (fit has built network A as `model` and placed the images): returns
    engine.FitResult with the kept network. Checkpoints hold both networks, so a re-run resumes from them. `loop`:
    the training engine (training.engine), passed in so that this module never imports the engine that calls it."""
    import dataclasses

    FitResult, _make_optimizer, evaluate = loop.FitResult, loop._make_optimizer, loop.evaluate
    improved, train_one_epoch = loop.improved, loop.train_one_epoch

    steps = max(1, math.ceil((len(xt) - 1) / cfg.batch_size))
    warmup = min(cfg.dividemix_warmup, cfg.epochs - 1)
    torch.manual_seed(cfg.seed + 1)  # network B: another random start (the same pretrained weights, if any)
    model_b = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device)
    if init is not None:
        init_weights(model_b, init, arch=cfg.arch)
    if cfg.channels_last:
        model_b = model_b.to(memory_format=torch.channels_last)
    nets = [model, model_b]
    opts = [_make_optimizer(net, cfg, steps) for net in nets]
    warm_cfg = dataclasses.replace(cfg, robust="none")
    weight = None
    if cfg.class_balance == "weights":
        weight = loop.class_weights(yt.cpu().numpy(), cfg.num_classes).to(device)
    trusted_np = None if trusted is None else trusted.cpu().numpy()

    history, best, start_epoch = [], {"val_loss": math.inf, "epoch": 0, "model": None}, 1
    if resume is not None:
        for k, (net, (opt, sched)) in enumerate(zip(nets, opts)):
            suffix = "" if k == 0 else "_b"
            net.load_state_dict(resume["model" + suffix])
            opt.load_state_dict(resume["optimizer" + suffix])
            if sched is not None and resume.get("scheduler" + suffix):
                sched.load_state_dict(resume["scheduler" + suffix])
        generator.set_state(resume["generator"].cpu() if device.type == "cpu" else resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        history, best = list(resume["history"]), dict(resume["best"])
        start_epoch = resume["epoch"] + 1

    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.early_stopping_patience and epoch - best["epoch"] > cfg.early_stopping_patience and best["epoch"] \
                and epoch > max(cfg.min_epochs, warmup):
            stopped_early = True
            break
        metrics = {"epoch": epoch}
        if epoch <= warmup:
            for k, (net, (opt, sched)) in enumerate(zip(nets, opts)):
                hook = (lambda step, n, e=epoch, k=k: on_step(e, k * n + step, 2 * n)) if on_step else None
                m = train_one_epoch(net, opt, sched, xt, yt, cfg=warm_cfg, device=device, generator=generator,
                                    loss_weight=weight, on_step=hook)
                metrics.update({f"train_loss{'_b' if k else ''}": m["train_loss"],
                                f"train_acc{'_b' if k else ''}": m["train_acc"]})
            metrics["phase"] = "warm-up"
        else:
            losses, accuracies = zip(*(per_image_loss(net, xt, yt, cfg=cfg, device=device, loop=loop) for net in nets))
            if cfg.dividemix_split == "mean":
                losses = [(losses[0] + losses[1]) / 2] * 2
            clean = [divide(loss, trusted_np) for loss in losses]
            metrics.update(train_acc=accuracies[0], train_acc_b=accuracies[1])  # before this epoch, given labels
            for callback in list(_observers):
                callback(epoch, clean[0], clean[1])
            for k, (net, (opt, sched)) in enumerate(zip(nets, opts)):
                hook = (lambda step, n, e=epoch, k=k: on_step(e, k * n + step, 2 * n)) if on_step else None
                m = train_divided_epoch(net, nets[1 - k], opt, sched, xt, yt, clean[1 - k], cfg=cfg, device=device,
                                        generator=generator, steps=steps, progress=epoch - 1 - warmup,
                                        loop=loop, on_step=hook)
                suffix = "_b" if k else ""
                metrics.update({f"train_loss{suffix}": m["loss_x"], f"labelled{suffix}": m["labelled"]})
            metrics["phase"] = "divided"
        vals = [evaluate(net, xv, yv, cfg=cfg, device=device) for net in nets]
        keep = 0 if len(yv) == 0 or not improved(vals[1], {"val_acc": vals[0]["acc"], "val_loss": vals[0]["loss"]},
                                                 cfg.monitor) else 1
        val = vals[keep]
        metrics.update(val_loss=val["loss"], val_acc=val["acc"], val_acc_a=vals[0]["acc"], val_acc_b=vals[1]["acc"],
                       kept_network="AB"[keep], lr=opts[0][0].param_groups[0]["lr"])
        history.append(metrics)
        if epoch >= cfg.min_epochs and (len(yv) == 0 or improved(val, best, cfg.monitor)):
            best = {"val_loss": val["loss"], "val_acc": val["acc"], "epoch": epoch,
                    "model": {k: v.detach().clone().cpu() for k, v in nets[keep].state_dict().items()}}
        if on_epoch is not None:
            on_epoch({
                "model": model.state_dict(), "model_b": model_b.state_dict(),
                "optimizer": opts[0][0].state_dict(), "optimizer_b": opts[1][0].state_dict(),
                "scheduler": opts[0][1].state_dict() if opts[0][1] is not None else None,
                "scheduler_b": opts[1][1].state_dict() if opts[1][1] is not None else None,
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "epoch": epoch, "history": history, "best": best, "config": cfg.to_dict(),
            })
    if best["model"] is not None:
        model.load_state_dict(best["model"])
    return FitResult(model=model, history=history, best_epoch=best["epoch"], stopped_early=stopped_early,
                     placement=placement, init=init_report)
