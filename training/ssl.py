"""Self-supervised pretraining of the classifier's backbone on unlabelled images: SimCLR (Chen et al., 2020) or
VICReg (Bardes, Ponce and LeCun, ICLR 2022), `cfg.method`.

Every image is augmented twice (the product's own training augmentation, training/augment.py, made stronger, and
a random greyscale); the backbone (the classifier of `cfg.arch` without its last linear layer) and a head map both
views to vectors. SimCLR: a small projection head to unit vectors, and the NT-Xent loss pulls each image's two views
together and pushes them from the other 2B - 2 views of the batch. VICReg: a wider three-layer expander, and a loss
with no negatives: the two views' mean squared distance, plus a hinge keeping every dimension's standard deviation
over the batch at 1 or more, plus the squared off-diagonal covariances (decorrelated dimensions). Labels are never
read. Afterwards the head is dropped and the backbone's state dict, under the classifier's own parameter names, is
what `train_classifier --init` takes: every tensor but the class layer's weight and bias fits.

Pure PyTorch + numpy, CPU-friendly, deterministic per seed on one device (the order, the augmentations and the
initial draw all come from the seed). Resumable from the checkpoint `on_epoch` hands out.
"""
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.augment import augment_batch
from training.engine import as_input, seed_everything
from training.placement import pick_device, place_images
from training.models import build_model
from training.ssl_config import SSLConfig

NUM_CLASSES = 8  # the classifier's class layer is dropped, but building the model needs a number
# What the saved file says it is: a backbone, no class layer (training/init.py reads its "model" entry).
BACKBONE_KIND = "ssl_backbone"


def class_layer_name(model):
    """The name of the model's last linear layer (its class scores), the layer the backbone leaves out."""
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = module_name
    if name is None:
        raise TypeError(f"{type(model).__name__} has no linear layer")
    return name


def build_backbone(arch, size):
    """(the classifier of `arch` with its class layer replaced by the identity, the embedding's width). Its state
    dict's names are the classifier's, less the class layer's."""
    model = build_model(arch, NUM_CLASSES, size)
    name = class_layer_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    width = getattr(parent, child).in_features
    setattr(parent, child, nn.Identity())
    return model, width


class SimCLR(nn.Module):
    """The backbone and the projection head (linear, batch norm, ReLU, linear) that the loss reads."""

    def __init__(self, arch, size, projection_dim=64):
        super().__init__()
        self.backbone, width = build_backbone(arch, size)
        self.projector = nn.Sequential(nn.Linear(width, width, bias=False), nn.BatchNorm1d(width),
                                       nn.ReLU(inplace=True), nn.Linear(width, projection_dim))

    def forward(self, x):
        return self.projector(self.backbone(x))


class VICReg(nn.Module):
    """The backbone and VICReg's expander: three linear layers of 4x the embedding's width, batch norm and ReLU
    between them (the paper's is 4x ResNet-50's 2,048, three layers)."""

    def __init__(self, arch, size):
        super().__init__()
        self.backbone, width = build_backbone(arch, size)
        wide = 4 * width
        self.projector = nn.Sequential(nn.Linear(width, wide, bias=False), nn.BatchNorm1d(wide), nn.ReLU(inplace=True),
                                       nn.Linear(wide, wide, bias=False), nn.BatchNorm1d(wide), nn.ReLU(inplace=True),
                                       nn.Linear(wide, wide))

    def forward(self, x):
        return self.projector(self.backbone(x))


def ssl_augment(x, generator, *, grey=0.2):
    """Two views differ by a flip, a larger affine transform (rotation 15 deg, scale 25 %, shift 10 %) and stronger
    colour jitter (40 %) than supervised training's, and a greyscale with probability `grey`."""
    x = augment_batch(x, generator, max_rotate_deg=15.0, max_scale=0.25, max_shift=0.10, jitter=0.4)
    to_grey = torch.rand(x.shape[0], device=x.device, generator=generator) < grey
    luma = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    return torch.where(to_grey[:, None, None, None], luma, x)


def nt_xent(z1, z2, temperature=0.2):
    """SimCLR's loss: z1[i] and z2[i] are two views of image i (B, D each, any scale: normalised here). For each of
    the 2B views, the cross-entropy of picking its partner among the other 2B - 1 by cosine similarity / t."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, partner)


def vicreg_loss(z1, z2, *, invariance=25.0, variance=25.0, covariance=1.0):
    """VICReg's loss with the paper's weights: z1[i] and z2[i] are two views of image i (B, D each). The views' mean
    squared difference; the mean over dimensions of max(0, 1 - std) for each view's batch; the sum of the squared
    off-diagonal entries of each view's covariance over the batch, divided by D."""
    z1, z2 = z1.float(), z2.float()
    b, d = z1.shape
    loss = invariance * F.mse_loss(z1, z2)
    for z in (z1, z2):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + 1e-4)
        cov = (z.T @ z) / (b - 1)
        off = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
        loss = loss + variance * F.relu(1 - std).mean() / 2 + covariance * off / d
    return loss


def ssl_model(cfg: SSLConfig):
    """`cfg.method`'s network (the backbone and its head) and its loss on two views' outputs (z1, z2)."""
    if cfg.method == "vicreg":
        return VICReg(cfg.arch, cfg.size), vicreg_loss
    return SimCLR(cfg.arch, cfg.size, cfg.projection_dim), partial(nt_xent, temperature=cfg.temperature)


@dataclass
class SSLResult:
    backbone: dict  # the backbone's state dict on the CPU, the classifier's names less the class layer
    history: list  # per epoch: {"epoch", "loss", "lr"}
    images: int  # images pretrained on


def batch_bounds(n, batch_size):
    """Full batches only (a contrastive loss over a handful of leftover images is noise): n // batch_size of them."""
    return [(a, a + batch_size) for a in range(0, n - batch_size + 1, batch_size)]


def pretrain(cfg: SSLConfig, images, *, device=None, resume=None, on_epoch=None, on_step=None):
    """`cfg.method` (SimCLR or VICReg) on `images` (N, S, S, 3) uint8 (memory-mapped or not; streamed to the device
    batch by batch). ValueError when there are fewer images than one batch. `resume`: a checkpoint from an earlier
    on_epoch call. `on_epoch(checkpoint)` after every epoch (save it to resume; it may raise to stop),
    `on_step(epoch, step, steps)` after every batch (progress, cancellation)."""
    cfg.validate()
    n = len(images)
    if n < cfg.batch_size:
        raise ValueError(f"{n} images are fewer than one batch of {cfg.batch_size}: self-supervised pretraining needs "
                         f"at least a full batch (lower the batch size)")
    device = pick_device() if device is None else torch.device(device)
    if cfg.num_threads and device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model, loss_of = ssl_model(cfg)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bounds = batch_bounds(n, cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(bounds))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    history, start = [], 1
    if resume is not None:
        model.load_state_dict(resume["network"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"].cpu() if device.type == "cpu" else resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        history, start = list(resume["history"]), resume["epoch"] + 1
    source, _ = place_images(images, device, mode="stream")
    for epoch in range(start, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        total = torch.zeros((), device=device)
        for step, ((a, b), batch) in enumerate(zip(bounds, source.batches(order, bounds)), 1):
            x = as_input(batch, cfg.channels_last)
            views = torch.cat([ssl_augment(x, generator), ssl_augment(x, generator)])
            z = model(views)
            loss = loss_of(z[: b - a], z[b - a:])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
            if on_step is not None:
                on_step(epoch, step, len(bounds))
        history.append({"epoch": epoch, "loss": float(total) / len(bounds), "lr": optimizer.param_groups[0]["lr"]})
        if on_epoch is not None:
            on_epoch({"network": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                      "torch_rng": torch.get_rng_state(), "epoch": epoch, "history": list(history),
                      "config": cfg.to_dict()})
    backbone = {k: v.detach().cpu().clone().contiguous() for k, v in model.backbone.state_dict().items()}
    return SSLResult(backbone=backbone, history=history, images=n)


def backbone_file(result: SSLResult, cfg: SSLConfig):
    """What is saved (torch.save) for `--init`: the backbone under "model" (training.init.state_dict_of reads it),
    with the configuration and history beside it."""
    return {"model": result.backbone, "kind": BACKBONE_KIND, "config": cfg.to_dict(), "history": result.history,
            "images": result.images}


@torch.no_grad()
def embed(backbone_state, arch, size, images, *, batch_size=256, device=None):
    """The backbone's embeddings (N, D) float32 of uint8 images (N, S, S, 3): for checks and benchmarks."""
    device = pick_device() if device is None else torch.device(device)
    model, _ = build_backbone(arch, size)
    model.load_state_dict(backbone_state)
    model.to(device).eval()
    out = []
    for a in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[a:a + batch_size])).to(device).permute(0, 3, 1, 2)
        out.append(model(as_input(x, False)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
