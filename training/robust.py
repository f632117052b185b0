"""Noise-robust training losses, chosen per run by TrainConfig.robust:

- "none": cross-entropy (with the config's class weights and label smoothing).
- "gce": generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018), (1 - p_y^q) / q. At q -> 0 it is
  cross-entropy, at q = 1 the mean absolute error; its gradient is cross-entropy's times p_y^q, so a sample the
  model gives a low probability to its given label (most often a wrong label) pulls less on the weights.
- "bootstrap": hard bootstrapping (Reed et al., ICLR 2015 workshop): the target is bootstrap_beta of the given
  label plus the rest on the model's own most likely class, -(beta log p_y + (1 - beta) log p_argmax), so where
  the model has come to disagree with a label, part of the pull goes to what it predicts.
- "eac": Erasing Attention Consistency (Zhang et al., ECCV 2022). Random erasing on the input; the image and its
  horizontal flip both go through the network; the loss is cross-entropy on the image plus eac_lambda times the
  mean squared difference between the class activation maps (CAMs) of the image and the flipped-back CAMs of the
  flipped image. A model that memorises a wrong label leans on details that do not survive the flip and the
  erasing; the consistency term keeps its attention on the whole face, and no image is dropped.
- "elr": early-learning regularization (Liu et al., NeurIPS 2020). Each train image keeps a running target
  t <- elr_beta t + (1 - elr_beta) p (p its softmax, detached; the engine passes each batch's rows of the train
  split), and the loss is cross-entropy plus elr_lambda log(1 - <t, p>): while the network is still learning the
  easy, mostly right labels, t is what it predicted then, and the term pulls p towards t, against a later pull to
  a wrong label. Its gradient on the logits is elr_lambda p_k (<t, p> - t_k) / (1 - <t, p>).
- "dividemix": two networks, co-divided semi-supervised training (training/dividemix.py, not a per-batch loss).
- "glc": Gold Loss Correction (Hendrycks et al., NeurIPS 2018). A corruption matrix C[true, given], the chance that
  an image of class `true` carries the label `given`, is estimated from trusted images (estimate_corruption: the
  softmax of a model trained on the noisy labels, averaged over the trusted images of each true class), and an
  untrusted image's loss is the cross-entropy of its given label under softmax(logits) @ C: the network's
  probabilities are for the true class, and C turns them into the chance of each given label. A trusted image takes
  plain cross-entropy on its label. engine.fit takes C as `corruption`; without it the method is refused.

Trusted labels: images a reviewer confirmed or relabelled come with `trusted` True. GCE and bootstrapping never
down-weight or re-target them: their per-sample loss is plain cross-entropy on the given label, and a run whose
every label is trusted takes plain cross-entropy's own code path (loss_config), so it trains to a plain run's
weights exactly. ELR's regulariser is zero on a trusted image; GLC corrects only untrusted labels. EAC drops and
re-targets nothing in the first place (its consistency term regularises attention, not the label), so it treats
trusted images as every other.

Pure PyTorch: what engine.train_one_epoch calls for one batch.
"""
import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from training.config import EAC_ARCHS, ROBUST_METHODS  # noqa: F401 (the names live with the config)
from training.models import features_and_logits


# The methods that change how a sample's label pulls; a trusted label bypasses them.
PER_LABEL_METHODS = ("gce", "bootstrap", "elr", "dividemix", "glc")

# GLC: a true class with fewer trusted images than this takes the pooled row (estimate_corruption), not its own.
GLC_MIN_PER_CLASS = 5


def loss_config(cfg, trusted):
    """The config a run's batches take their loss from. A per-label method has nothing to do on a run whose every
    label a reviewer decided (trusted all True): that run is trained by plain cross-entropy's own code path, not by
    the same sums in another order, so its weights equal a plain run's on any processor."""
    if cfg.robust in PER_LABEL_METHODS and trusted is not None and len(trusted) and bool(trusted.all()):
        return dataclasses.replace(cfg, robust="none")
    return cfg


def weighted_mean(per_sample, target, weight):
    """Mean as F.cross_entropy takes it with class weights: sum(w_y * l) / sum(w_y)."""
    if weight is None:
        return per_sample.mean()
    w = weight[target]
    return (per_sample * w).sum() / w.sum().clamp_min(1e-12)


def _trusted_as_ce(per_sample, logits, target, trusted, label_smoothing=0.0, weight=None):
    """per_sample with the trusted samples' entries replaced by the cross-entropy the run would take without a
    robust method, scaled so that weighted_mean gives F.cross_entropy's own weighted mean. (With class weights and
    label smoothing, cross-entropy weights each class's smoothing term by that class's weight, not the given
    label's: its per-sample loss over w_y is what weighted_mean's w_y scaling turns back into it.)"""
    if trusted is None:
        return per_sample
    ce = F.cross_entropy(logits.float(), target, weight=weight, reduction="none", label_smoothing=label_smoothing)
    if weight is not None:
        ce = ce / weight[target].clamp_min(1e-12)
    return torch.where(trusted, ce, per_sample)


def gce_loss(logits, target, *, q=0.7, weight=None, trusted=None, label_smoothing=0.0):
    """Generalized cross-entropy (1 - p_y^q) / q, averaged (class-weighted if weight is given); cross-entropy for
    the trusted samples."""
    p_y = torch.softmax(logits.float(), 1).gather(1, target[:, None]).squeeze(1)
    per_sample = _trusted_as_ce((1 - p_y.clamp_min(1e-12) ** q) / q, logits, target, trusted, label_smoothing, weight)
    return weighted_mean(per_sample, target, weight)


def bootstrap_loss(logits, target, *, beta=0.8, weight=None, trusted=None, label_smoothing=0.0):
    """Hard bootstrapping: beta of cross-entropy on the given label, 1 - beta on the model's own argmax (a
    constant target), averaged (class-weighted by the given label if weight is given); the trusted samples keep
    their whole target on the given label."""
    log_p = torch.log_softmax(logits.float(), 1)
    predicted = log_p.detach().argmax(1)
    per_sample = -(beta * log_p.gather(1, target[:, None]) + (1 - beta) * log_p.gather(1, predicted[:, None]))
    per_sample = _trusted_as_ce(per_sample.squeeze(1), logits, target, trusted, label_smoothing, weight)
    return weighted_mean(per_sample, target, weight)


class ELRMemory:
    """ELR's running targets, one row of class probabilities per train image (zeros until its first batch)."""

    def __init__(self, n, num_classes, *, beta, device=None):
        self.beta = beta
        self.targets = torch.zeros(n, num_classes, device=device)

    def update(self, index, probs):
        """t[index] <- beta t[index] + (1 - beta) p / sum(p), p clamped away from 0 and 1 as the authors do."""
        p = probs.detach().float().clamp(1e-4, 1 - 1e-4)
        p = p / p.sum(1, keepdim=True)
        self.targets[index] = self.beta * self.targets[index] + (1 - self.beta) * p
        return self.targets[index]


def elr_loss(logits, target, memory_targets, *, lam=3.0, weight=None, trusted=None, label_smoothing=0.0):
    """Cross-entropy plus lam log(1 - <t, p>) per sample (memory_targets: t, the batch's rows of ELRMemory after
    this batch's update), averaged (class-weighted if weight is given); the trusted samples take cross-entropy
    alone."""
    p = torch.softmax(logits.float(), 1).clamp(1e-4, 1 - 1e-4)
    regulariser = torch.log(1 - (memory_targets * p).sum(1))
    ce = F.cross_entropy(logits.float(), target, weight=weight, reduction="none", label_smoothing=label_smoothing)
    if weight is not None:
        ce = ce / weight[target].clamp_min(1e-12)
    if trusted is not None:
        regulariser = torch.where(trusted, torch.zeros_like(regulariser), regulariser)
    return weighted_mean(ce + lam * regulariser, target, weight)


def estimate_corruption(probs, labels, num_classes, *, min_per_class=GLC_MIN_PER_CLASS):
    """GLC's corruption matrix C (num_classes x num_classes, rows summing to 1; C[true, given]) and how it was
    estimated, from trusted images: probs (n, num_classes), the softmax of a model trained on the noisy labels that
    did not train on these images (out-of-fold probabilities), and labels (n,), their trusted labels.

    Row k is the mean of probs over the trusted images of class k when there are at least min_per_class of them.
    A class with fewer takes the pooled row: the mean probability the model gives a trusted image's own class, s
    (over every trusted image), on the diagonal and (1 - s) spread evenly over the other classes: as much noise as
    the trusted images show overall, with no guess at where it goes. No trusted image at all: ValueError."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        raise ValueError("robust glc estimates how labels are corrupted from trusted images, and there are none")
    if probs.shape != (len(labels), num_classes):
        raise ValueError(f"glc: probabilities of shape {probs.shape} for {len(labels)} trusted images of "
                         f"{num_classes} classes")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"glc: trusted labels must be class codes 0-{num_classes - 1}")
    counts = np.bincount(labels, minlength=num_classes)
    stay = float(probs[np.arange(len(labels)), labels].mean())
    pooled = np.full(num_classes, (1 - stay) / max(num_classes - 1, 1))
    matrix = np.empty((num_classes, num_classes))
    fallback = []
    for k in range(num_classes):
        if counts[k] >= min_per_class:
            matrix[k] = probs[labels == k].mean(0)
        else:
            matrix[k] = pooled
            matrix[k, k] = stay
            fallback.append(k)
    matrix /= matrix.sum(1, keepdims=True)
    return matrix, {"images": int(len(labels)), "per_class": counts.tolist(), "fallback": fallback,
                    "pooled_diagonal": stay, "min_per_class": min_per_class}


def glc_loss(logits, target, corruption, *, weight=None, trusted=None, label_smoothing=0.0):
    """Forward-corrected cross-entropy -log (softmax(logits) @ C)[given] per untrusted sample (corruption: C, on the
    logits' device), plain cross-entropy per trusted sample, averaged (class-weighted by the given label if weight
    is given)."""
    noisy = torch.softmax(logits.float(), 1) @ corruption.float()
    per_sample = -torch.log(noisy.gather(1, target[:, None]).squeeze(1).clamp_min(1e-12))
    per_sample = _trusted_as_ce(per_sample, logits, target, trusted, label_smoothing, weight)
    return weighted_mean(per_sample, target, weight)


def corruption_tensor(corruption, num_classes, device):
    """GLC's C as a float tensor on device; ValueError when it is missing or not a (num_classes, num_classes)
    matrix of probabilities whose rows sum to 1."""
    if corruption is None:
        raise ValueError("robust glc needs a corruption matrix estimated from trusted labels "
                         "(training.robust.estimate_corruption); none was given")
    c = torch.as_tensor(np.asarray(corruption, dtype=np.float32), device=device)
    if c.shape != (num_classes, num_classes) or bool((c < 0).any()) or \
            not torch.allclose(c.sum(1), torch.ones(num_classes, device=device), atol=1e-3):
        raise ValueError(f"robust glc's corruption matrix must be {num_classes} x {num_classes} with rows of "
                         f"probabilities summing to 1")
    return c


def make_state(cfg, n_train, device, corruption=None):
    """What a method keeps across batches for a run of n_train images (ELR's ELRMemory; GLC's corruption matrix as
    a tensor), else None."""
    if cfg.robust == "elr":
        return ELRMemory(n_train, cfg.num_classes, beta=cfg.elr_beta, device=device)
    if cfg.robust == "glc":
        return corruption_tensor(corruption, cfg.num_classes, device)
    return None


def random_erase(x, generator, *, p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3), value=0.5):
    """torchvision's RandomErasing, batched: with probability p a rectangle of `scale` of the image's area and
    aspect ratio in `ratio` (log-uniform) is filled with `value` (0.5: the mid-grey of inputs in [0, 1], as 0 is
    after the usual normalisation). x: (B, C, H, W); returns a new tensor."""
    b, _, h, w = x.shape
    dev = x.device

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(b, device=dev, generator=generator)

    on = torch.rand(b, device=dev, generator=generator) < p
    area = uniform(*scale) * h * w
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (uniform(0, 1) * (h - eh + 1)).floor()
    left = (uniform(0, 1) * (w - ew + 1)).floor()
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & on[:, None, None])[:, None]  # (B, 1, H, W)
    return torch.where(mask, torch.full_like(x, value), x)


def class_activation_maps(feature_map, linear_weight):
    """CAMs (B, classes, h, w): each class's linear weights applied to the last conv map at every position.
    The weights are taken as constants (as in the EAC authors' code): the consistency term shapes the features,
    not the classifier."""
    return torch.einsum("bkhw,ck->bchw", feature_map.float(), linear_weight.detach().float())


def attention_consistency(cam, cam_of_flipped):
    """Mean squared difference between an image's CAMs and its flip's CAMs flipped back: 0 exactly when the
    network's attention follows the flip."""
    return F.mse_loss(cam, cam_of_flipped.flip(3))


def eac_forward(model, x):
    """(logits of x, consistency term) for one batch: x and its horizontal flip in one pass."""
    logits, features, weight = features_and_logits(model, torch.cat([x, x.flip(3)]))
    cams = class_activation_maps(features, weight)
    b = x.shape[0]
    return logits[:b], attention_consistency(cams[:b], cams[b:])


def batch_loss(model, x, target, *, cfg, weight, generator, trusted=None, index=None, state=None):
    """(logits for the batch's accuracy, loss to minimise) under cfg.robust. x is the (augmented) batch; trusted,
    a bool tensor like target or None, marks the samples whose labels a reviewer decided; index: the batch's rows
    of the train split, and state: make_state's object (ELR reads and updates its rows)."""
    if cfg.robust == "eac":
        x = random_erase(x, generator)
        logits, consistency = eac_forward(model, x)
        ce = F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)
        return logits, ce + cfg.eac_lambda * consistency
    logits = model(x)
    if cfg.robust == "gce":
        return logits, gce_loss(logits, target, q=cfg.gce_q, weight=weight, trusted=trusted,
                                label_smoothing=cfg.label_smoothing)
    if cfg.robust == "elr":
        if state is None or index is None:
            raise ValueError("robust elr needs the batch's train rows (index) and its memory (make_state)")
        memory_targets = state.update(index, torch.softmax(logits.detach().float(), 1))
        return logits, elr_loss(logits, target, memory_targets, lam=cfg.elr_lambda, weight=weight, trusted=trusted,
                                label_smoothing=cfg.label_smoothing)
    if cfg.robust == "glc":
        if state is None:
            raise ValueError("robust glc needs its corruption matrix (make_state)")
        return logits, glc_loss(logits, target, state, weight=weight, trusted=trusted,
                                label_smoothing=cfg.label_smoothing)
    if cfg.robust == "bootstrap":
        return logits, bootstrap_loss(logits, target, beta=cfg.bootstrap_beta, weight=weight, trusted=trusted,
                                      label_smoothing=cfg.label_smoothing)
    return logits, F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)
