"""Ambiguity scores from CycleGAN generators: SSIM(image, G(image)) on the device holding the images, in a fixed
order with no augmentation, and its normalisation per generator.

The published rule: an image labelled A that G_{A->B} barely changes probably does not show A; ambiguity is the
highest raw SSIM over the generators leaving A, flagged at or above a threshold (0.85). Raw SSIMs are not
comparable across generators (one trained longer changes everything more), nor across images (a generator blurs
some faces more than others whatever their expression). So each SSIM is read against the image's own baseline,
SSIM(image, G_{B->A}(image)): the pair's other generator, which the identity loss teaches to leave A images alone,
and the contrast SSIM(x, G_{A->B}(x)) - SSIM(x, G_{B->A}(x)) is standardised over the images of the source class:
z says how little G_{A->B} changed this image, against how much its identity mapping did, compared with its peers.
The target whose generator changes an image least, relative to its peers, is the GAN's suggested label.
"""
import numpy as np
import torch

from gan.cyclegan import to_u8, to_unit
from gan.ssim import ssim
from training.placement import iter_batches


@torch.no_grad()
def transform_ssim(generator, images_u8, *, batch_size=256, grey=True, window="uniform", amp=True):
    """SSIM between each image and its transformation. images_u8: (N, S, S, 3) uint8 numpy; returns (N,) float.

    Images stream to the generator's device once per batch (a memory-mapped cache is read batch by batch, the next
    batch's copy overlapped with this one's compute: training.placement.iter_batches); the SSIM is computed there on
    the uint8-rounded output, as a saved PNG of the transformation would be scored, with data_range 255."""
    generator.eval()
    device = next(generator.parameters()).device
    out = np.empty(len(images_u8), dtype=np.float32)
    start = 0
    for x_u8 in iter_batches(images_u8, device, batch_size):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            y_u8 = to_u8(generator(to_unit(x_u8)))
        out[start : start + len(x_u8)] = ssim(x_u8.float(), y_u8.float(), data_range=255, grey=grey,
                                               window=window).cpu().numpy()
        start += len(x_u8)
    return out


def standardise(values):
    """z-scores of one generator's scores (its SSIM contrasts) over its source class (0 where the class has no
    spread)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.zeros_like(values)
    std = values.std()
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


def percentile_rank(values):
    """Ranks scaled to (0, 1]; ties share their average rank. NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    ok = ~np.isnan(values)
    if ok.any():
        from scipy.stats import rankdata

        out[ok] = rankdata(values[ok]) / ok.sum()
    return out
