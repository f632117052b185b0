"""SSIM, batched in torch on whatever device holds the images.

Two conventions, both as `skimage.metrics.structural_similarity` computes them:
- "uniform" (skimage's default; the published experiment's choice): 7x7 uniform window, sample covariance
  (N / (N - 1)), K1 0.01, K2 0.03, borders cropped by 3;
- "gaussian" (Wang et al. 2004; skimage with gaussian_weights=True): Gaussian window sigma 1.5 truncated at
  3.5 sigma (11x11), population covariance, borders cropped by 5.
The data range is always explicit. RGB images are scored per channel and averaged (skimage's channel_axis), or
first converted to grey with ITU-R BT.601 luminance weights in R, G, B order (the published experiment converted
RGB arrays with a BGR formula, swapping R and B).
"""

import torch
import torch.nn.functional as F

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B


def to_grey(x):
    """(B, 3, H, W) RGB -> (B, 1, H, W) luminance."""
    w = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _gaussian_kernel(sigma, truncate, dtype, device):
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _filter(x, window, kernel):
    """Valid-region local means of x (B, C, H, W): exactly skimage's filtered maps with the borders cropped."""
    if window == "uniform":
        return F.avg_pool2d(x, kernel, stride=1)
    c = x.shape[1]
    k = kernel.numel()
    x = F.conv2d(x, kernel.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim(x, y, *, data_range, window="uniform", win_size=7, sigma=1.5, k1=0.01, k2=0.03, grey=False,
         per_channel=False):
    """Mean SSIM per image pair. x, y: (B, C, H, W) tensors on the same device; returns (B,) float32. Computed in
    float32 (within 1e-5 of skimage on 8-bit images) unless the inputs are float64.

    grey=True converts RGB to luminance first; otherwise channels are scored separately and averaged.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"need two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if data_range is None or data_range <= 0:
        raise ValueError("data_range must be given explicitly (255 for uint8 images, 1 for [0, 1] floats)")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    if grey and x.shape[1] == 3:
        x, y = to_grey(x), to_grey(y)
    if window == "uniform":
        kernel, n = win_size, win_size * win_size
        cov_norm = n / (n - 1)  # sample covariance
    elif window == "gaussian":
        kernel, cov_norm = _gaussian_kernel(sigma, 3.5, dtype, x.device), 1.0
    else:
        raise ValueError(f"window must be 'uniform' or 'gaussian', not {window!r}")
    ux, uy = _filter(x, window, kernel), _filter(y, window, kernel)
    uxx, uyy, uxy = _filter(x * x, window, kernel), _filter(y * y, window, kernel), _filter(x * y, window, kernel)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    per = s.mean(dim=(2, 3))  # (B, C)
    return (per if per_channel else per.mean(1)).float()
