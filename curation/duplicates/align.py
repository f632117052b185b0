"""The second look at a linked pair: align the two pictures and measure what is left.

The hash and the colour thumbnail (detect.py) see an 8 x 8 picture; at that size two different people framed alike
(the same pose, background and skin tone) look the same, and as a set grows more such pairs pass both by chance (at
300,000 faces, half the pairs found). A copy is the same picture: once aligned, it differs from its original only
by what copying did to every pixel (noise, a little blur, JPEG blocks, an exposure change). A different person
differs in places: the eyes, the brows, the mouth, the hairline.

So each linked pair is aligned and compared at ALIGN_SIDE px in grey:
- the alignment is an affine map from the copy's pixels to the original's (a crop is a scale and a shift, a
  recapture a small shift, zoom and tilt), fitted by Gauss-Newton on the pixel differences (Lucas-Kanade) after a
  gain and an offset (an exposure change), started where the link says (the image itself, its mirror, or its
  CROP_SCALE crop, at the centre or off it, on the side whose variant matched);
- the residual is read through a tolerance: both pictures smoothed (SMOOTH px), and a pixel counts only by how far
  it lies outside the other picture's range over its 3 x 3 neighbours, so an edge that lands a fraction of a pixel
  apart (resampling, a tilt) costs nothing while an eye that is not there does;
- the pair is kept when the RESIDUAL_PERCENTILE-th percentile of that residual, over the pixels both pictures cover
  and in units of the target picture's contrast (its standard deviation), is at most MAX_RESIDUAL, less where the
  colour thumbnails matched only loosely (residual_limit).

Measured on 30,000 synthetic faces (docs/results.md): the check drops 96 % of the wrong links and 0.3 % of the
right ones.
"""
import functools
import os

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from curation.duplicates.detect import CROPS, MAX_RESIDUAL, ordered_map

ALIGN_SIDE = 32  # px of the grey pictures compared
# Gauss-Newton steps. Two: on the 30,000 faces' 4,980 links, 2, 3 and 5 steps keep the same 3,125 copies' links
# (and 51, 59 and 63 wrong ones); the start the link gives is already close.
ITERATIONS = 2
SMOOTH = 1.5  # px: the Gaussian both pictures are smoothed with before the residual
RESIDUAL_PERCENTILE = 95
COLOUR_KNEE = 0.01  # beyond this colour distance a pair's residual limit falls by as much (residual_limit)
BLUR_MATCH = 0.8  # px: the extra smoothing of the sharper picture tried for a blurred copy
# A noisy picture (heavy JPEG, sensor noise) leaves a residual however well it aligns: the residual counts less by
# NOISE_ALLOWANCE times the noisier picture's noise() beyond NOISE_FLOOR.
NOISE_ALLOWANCE = 0.2
NOISE_FLOOR = 0.1
MIN_COVER = 0.6  # a pair whose aligned pictures overlap on less of the side's area is not a copy
# A pair whose first way leaves a residual above this many times its limit is not aligned the other way: on the
# 30,000 faces no copy the second way kept had more than 3.2 times, and 7 in 10 wrong links have more than 4.
SECOND_WAY_WITHIN = 4.0
BATCH = 96  # pairs aligned at once (a thread holds about 25 MB of working arrays for them)


def grey_thumbnail(image):
    """The ALIGN_SIDE x ALIGN_SIDE grey picture (uint8) of a PIL image, each pixel the mean of its area."""
    return np.asarray(image.convert("L").resize((ALIGN_SIDE, ALIGN_SIDE), Image.BOX), dtype=np.uint8)


def _at(x, y):
    """Where bilinear samples at per-pair pixel coordinates x, y (P, S, S) read (P, S, S) pictures (clamped at the
    edge): (the flat index of each sample's top-left pixel, its horizontal and vertical weights), for _sample."""
    p, s, _ = x.shape
    x0, y0 = np.clip(np.floor(x), 0, s - 2), np.clip(np.floor(y), 0, s - 2)
    at = (y0 * s + x0).astype(np.intp) + (np.arange(p, dtype=np.intp) * (s * s))[:, None, None]
    return at, np.clip(x - x0, 0, 1), np.clip(y - y0, 0, 1)


def _sample(images, where):
    """Bilinear samples of (P, S, S) images where _at says (one _at serves every picture warped the same way)."""
    at, fx, fy = where
    s = images.shape[-1]
    flat = images.reshape(-1)
    top = flat.take(at) * (1 - fx) + flat.take(at + 1) * fx
    bottom = flat.take(at + s) * (1 - fx) + flat.take(at + s + 1) * fx
    return top * (1 - fy) + bottom * fy


def _photometric(warped, target, mask, n):
    """Per pair, the gain and offset that best map warped onto target over mask, and target's variance there."""
    mw = (warped * mask).sum((1, 2)) / n
    mt = (target * mask).sum((1, 2)) / n
    dw, dt = (warped - mw[:, None, None]) * mask, (target - mt[:, None, None]) * mask
    var_w, var_t = (dw * dw).sum((1, 2)) / n, (dt * dt).sum((1, 2)) / n
    gain = (dw * dt).sum((1, 2)) / n / np.maximum(var_w, 1e-6)
    return gain, mt - gain * mw, var_t


@functools.cache
def _smoothing_matrix(sigma, side):
    """(side, side): a Gaussian of sigma px along one axis as a matrix (scipy.ndimage's, edges reflected)."""
    return gaussian_filter1d(np.eye(side, dtype=np.float64), sigma, axis=0).astype(np.float32)


def _smooth(pictures, sigma):
    """(P, S, S) pictures smoothed by a Gaussian of sigma px (as scipy's gaussian_filter, in two matrix products)."""
    g = _smoothing_matrix(sigma, pictures.shape[-1])
    return g @ pictures @ g.T


def _spread(pictures, radius, op):
    """op (np.maximum or np.minimum) of each pixel's (2 radius + 1)^2 neighbourhood within the picture, for (P, S, S)
    pictures (as scipy's maximum_filter / minimum_filter, whose reflected edges add no other values)."""
    out = pictures
    for axis in (1, 2):
        spread = out.copy()
        for shift in range(1, radius + 1):
            ahead = [slice(None)] * 3
            behind = [slice(None)] * 3
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            spread[tuple(ahead)] = op(spread[tuple(ahead)], out[tuple(behind)])
            spread[tuple(behind)] = op(spread[tuple(behind)], out[tuple(ahead)])
        out = spread
    return out


def residuals(sources, targets, start):
    """For each pair k, align sources[k] onto targets[k] ((P, S, S) grey) from the affine map start[k] (P, 6:
    x = a u + b v + c, y = d u + e v + f, from the target's pixel (u, v) to the source's) and return the residual
    (the RESIDUAL_PERCENTILE-th percentile of the tolerant difference, in units of the target's s.d.; inf where the
    aligned pictures overlap on less than MIN_COVER of the area)."""
    src = np.asarray(sources, np.float32)
    tgt = np.asarray(targets, np.float32)
    p, s, _ = tgt.shape
    v, u = np.mgrid[0:s, 0:s].astype(np.float32)
    basis = np.stack([u, v, np.ones_like(u)]).reshape(3, -1)  # (3, S*S)
    params = np.asarray(start, np.float64).reshape(p, 2, 3).copy()
    grad_y, grad_x = np.gradient(src, axis=(1, 2))

    def warp():
        xy = (params.astype(np.float32) @ basis).reshape(p, 2, s, s)
        x, y = xy[:, 0], xy[:, 1]
        inside = (x >= 0) & (x <= s - 1) & (y >= 0) & (y <= s - 1)
        return x, y, inside.astype(np.float32)

    for _ in range(ITERATIONS):
        x, y, mask = warp()
        n = np.maximum(mask.sum((1, 2)), 1.0)
        where = _at(x, y)
        warped = _sample(src, where)
        gain, offset, _ = _photometric(warped, tgt, mask, n)
        error = ((tgt - gain[:, None, None] * warped - offset[:, None, None]) * mask).reshape(p, -1)
        gx = (gain[:, None, None] * _sample(grad_x, where) * mask).reshape(p, 1, -1)
        gy = (gain[:, None, None] * _sample(grad_y, where) * mask).reshape(p, 1, -1)
        jac = np.concatenate([gx * basis, gy * basis], axis=1)  # (P, 6, S*S)
        hessian = jac @ jac.transpose(0, 2, 1) + 1e-3 * np.eye(6, dtype=np.float32)
        step = np.linalg.solve(hessian.astype(np.float64), (jac @ error[:, :, None]).astype(np.float64))
        params += step[:, :, 0].reshape(p, 2, 3)
        params = np.nan_to_num(params)

    x, y, mask = warp()
    n = np.maximum(mask.sum((1, 2)), 1.0)
    warped = _sample(src, _at(x, y))
    gain, offset, var_t = _photometric(warped, tgt, mask, n)
    fitted = gain[:, None, None] * warped + offset[:, None, None]
    scale = np.sqrt(np.maximum(var_t, 1e-6))[:, None, None]
    # Only where both pictures are defined with a margin (the smoothing reads 2 px beyond the overlap's edge).
    interior = _spread(mask, 2, np.minimum) > 0
    m = interior.reshape(p, -1).sum(axis=1)
    rank = s * s - m + np.floor((RESIDUAL_PERCENTILE / 100) * np.maximum(m - 1, 0)).astype(np.int64)
    rank = np.minimum(rank, s * s - 1)
    out = np.full(p, np.inf)
    # A blurred copy: the sharper picture smoothed a little more (BLUR_MATCH) may match where the two as they are do
    # not; the least of the three residuals counts. Each picture smoothed twice, each smoothing's 3 x 3 range once.
    sigmas = (SMOOTH, float(np.hypot(SMOOTH, BLUR_MATCH)))
    ranges = {}
    for name, picture in (("fitted", fitted), ("target", tgt)):
        for sigma in sigmas:
            smooth = _smooth(picture, sigma)
            ranges[name, sigma] = (smooth, _spread(smooth, 1, np.maximum), _spread(smooth, 1, np.minimum))
    lowest = rank.min()
    for fitted_sigma, target_sigma in ((sigmas[0], sigmas[0]), (sigmas[1], sigmas[0]), (sigmas[0], sigmas[1])):
        a, a_max, a_min = ranges["fitted", fitted_sigma]
        b, b_max, b_min = ranges["target", target_sigma]
        outside = np.maximum(np.maximum(b - a_max, a_min - b), np.maximum(a - b_max, b_min - a)) / scale
        # The percentile over each pair's interior pixels: the others set below every value. Only the values from
        # the lowest rank up are sorted (a partition first).
        flat = np.where(interior, np.maximum(outside, 0), -1.0).reshape(p, -1)
        top = np.sort(np.partition(flat, lowest, axis=1)[:, lowest:], axis=1)
        out = np.minimum(out, np.take_along_axis(top, (rank - lowest)[:, None], axis=1)[:, 0])
    return np.where((mask.reshape(p, -1).mean(axis=1) >= MIN_COVER) & (m > 0), out, np.inf)


def start_map(how, crop_scale, side=ALIGN_SIDE):
    """The affine map (6,) the alignment starts from for a link found through `how` (detect.VARIANTS' names, "" the
    image itself): the identity, or the crop of crop_scale of the side at its offset (detect.CROPS: the source's
    crop matched the target)."""
    if how in CROPS:
        dx, dy = CROPS[how]
        margin = (side - 1) * (1 - crop_scale) / 2
        return np.array([crop_scale, 0, margin + dx * side, 0, crop_scale, margin + dy * side])
    return np.array([1.0, 0, 0, 0, 1.0, 0])


def pair_residuals(pairs, pictures, crop_scale, progress=None, *, enough=None, workers=None):
    """The residual of each pair (i, j, distance, how, source, ...): source is the image whose variant (how) matched
    the other as it is. Each pair is aligned both ways, the least residual counting: the source onto the other from
    where the link says (its mirror, its crop), and the other onto the source (mirrored for a mirror link, from the
    identity for a crop: a recapture found through a crop lands there). The two ways differ where one picture is
    sharper than the other (a blurred or JPEG copy). Less the noise allowance (NOISE_ALLOWANCE). pictures maps an
    image's index to its grey_thumbnail; a pair missing either picture gets inf. With `enough` (a residual a pair,
    e.g. its limit), the second way is aligned only for the pairs whose first is above it (the first way's residual
    is returned for the others), and not for those whose first is above SECOND_WAY_WITHIN times it. Batches of BATCH pairs are aligned on `workers` threads (numpy and scipy's
    filters run without the GIL; default one a CPU this process may use)."""
    out = np.full(len(pairs), np.inf)

    def batch(start):
        rows, ways = [], (([], [], []), ([], [], []))  # each way's (sources, targets, starting maps)
        for k, (i, j, _, how, source, *_) in enumerate(pairs[start : start + BATCH]):
            other = j if source == i else i
            a, b = pictures.get(source), pictures.get(other)
            if a is None or b is None:
                continue
            rows.append(start + k)
            if how == "mirror":
                a, b = a[:, ::-1], b[:, ::-1]
            side = a.shape[0]
            # The source onto the other from where the link says; the other onto the source from the identity.
            for way, part in zip(ways, ((a, pictures[other], start_map(how, crop_scale, side)),
                                        (b, pictures[source], start_map("", crop_scale, side)))):
                for held, value in zip(way, part):
                    held.append(value)
        if not rows:
            return rows, None
        first, second = ([np.stack(part) for part in way] for way in ways)
        noisier = np.maximum(noise(first[0]), noise(second[0]))
        allowance = NOISE_ALLOWANCE * np.maximum(noisier - NOISE_FLOOR, 0.0)
        found = residuals(*first) - allowance
        if enough is None:
            again = np.ones(len(rows), bool)
        else:
            limit = np.asarray(enough, float)[rows]
            again = (found > limit) & (found <= SECOND_WAY_WITHIN * np.maximum(limit, 1e-3))
        if again.any():
            found[again] = np.minimum(found[again],
                                      residuals(*(part[again] for part in second)) - allowance[again])
        return rows, found

    starts = range(0, len(pairs), BATCH)
    workers = max(1, workers or len(os.sched_getaffinity(0)))
    for done, (rows, found) in enumerate(ordered_map(batch, starts, workers), 1):
        if rows:
            out[rows] = found
        if progress:
            progress(min(1.0, done / len(starts)))
    return out


def noise(pictures):
    """How noisy each (P, S, S) picture is: the s.d. of what a 1 px Gaussian smooths away, over the picture's own
    s.d. (a clean face about 0.15-0.25 at 32 px; a heavily JPEG-compressed or noisy one 0.3-0.9)."""
    x = np.asarray(pictures, np.float32)
    detail = x - gaussian_filter(x, (0, 1.0, 1.0))
    return detail.reshape(len(x), -1).std(axis=1) / np.maximum(x.reshape(len(x), -1).std(axis=1), 1e-3)


def residual_limit(colour, max_residual=MAX_RESIDUAL):
    """The largest residual a pair whose colour thumbnails lie `colour` apart (1 - cosine) may have: max_residual up
    to COLOUR_KNEE, then less by as much as the colour is farther (a pair that matched loosely in colour must match
    closely once aligned)."""
    return max_residual - np.maximum(0.0, np.asarray(colour, float) - COLOUR_KNEE)


def confirmed(pairs, pictures, crop_scale, max_residual=MAX_RESIDUAL, progress=None, workers=None):
    """The pairs (near_pairs') whose aligned pictures match: each kept pair with its residual appended, and how many
    were dropped."""
    limits = residual_limit([pair[5] for pair in pairs], max_residual) if pairs else np.zeros(0)
    found = pair_residuals(pairs, pictures, crop_scale, progress, enough=limits, workers=workers)
    kept = [(*pair, float(r)) for pair, r, limit in zip(pairs, found, limits) if r <= limit]
    return kept, len(pairs) - len(kept)
