"""Augmentation on batched tensors, on whatever device holds them: horizontal flip, a small affine transform
(rotation, scale, shift) and colour jitter. Only training batches are augmented; never scoring or evaluation."""
import math

import torch
import torch.nn.functional as F


def augment_batch(x, generator, *, max_rotate_deg=10.0, max_scale=0.1, max_shift=0.06, jitter=0.2):
    """x: (B, 3, S, S) float in [0, 1]; returns a new tensor of the same shape."""
    b = x.shape[0]

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(b, device=x.device, generator=generator)

    flip = torch.rand(b, device=x.device, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)

    angle = uniform(-max_rotate_deg, max_rotate_deg) * (math.pi / 180)
    scale = uniform(1 - max_scale, 1 + max_scale)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, uniform(-max_shift, max_shift) * 2], 1),
         torch.stack([sin, cos, uniform(-max_shift, max_shift) * 2], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    brightness = uniform(1 - jitter, 1 + jitter)[:, None, None, None]
    contrast = uniform(1 - jitter, 1 + jitter)[:, None, None, None]
    saturation = uniform(1 - jitter, 1 + jitter)[:, None, None, None]
    x = x * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey) * saturation + grey
    return x.clamp_(0, 1)
