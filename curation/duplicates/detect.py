"""Which images of a set are near-duplicates: the same picture captured again (shifted, rescaled, re-exposed,
recompressed), not merely the same kind of picture.

Two signals must both agree that a pair is a near-duplicate:
- the perceptual hash (imagehash's pHash: the signs of the low-frequency DCT of a 32 x 32 grey thumbnail, 64
  bits), within `max_hash_distance` bits: the pair has the same coarse structure. It finds the candidates, one
  XOR and popcount per pair on one 64-bit word, in blocks.
- the colour thumbnail (8 x 8 RGB, its mean removed, unit length), within `max_colour_distance` (1 - cosine): the
  same colours in the same places, whatever the exposure. Faces share a layout (the hash alone links different
  people framed alike); blank frames share a hash of noise (the thumbnail alone links any two of a colour).

Copies made differently (a mirrored face, a face cropped again with other margins) move both signals far, so
each image is also described as its VARIANTS: its mirror, and a centre crop of CROP_SCALE of its side resized back. A pair (i, j) is linked when, for the image itself or one of its variants on i's side,
both signals put it within their limits of image j as it is. A crop of 2-8 % of the side on each side (scale
0.84-0.96) lands close to the 90 % centre crop; a crop of i is found from i's crop variant, an original from its
crop's side only when the original is the cropped one, so every ordered pair is compared.

A signal is a function of (features, i, j) giving the distance of each pair (i[k], j[k]), and a pair is linked
when every signal is within its limit, so a classifier-embedding distance can join as one more signal (SIGNALS:
add its vectors to Features and its function and limit there). Groups are the connected components of the linked
pairs.
"""
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

HASH_BITS = 64
THUMB = 8
# Chosen on one generated set (seed 0 of benchmarks/duplicates.py) and measured on others; docs/results.md has the
# figures. The hash is the loose gate (faces framed alike differ in few bits; a different structure in many), the
# thumbnail the tight test.
MAX_HASH_DISTANCE = 22  # of 64 bits
MAX_COLOUR_DISTANCE = 0.03  # 1 - cosine of the mean-removed 8 x 8 RGB thumbnails
BLOCK_PAIRS = 4_000_000  # hash distances held at once
# Measured on 600 faces with 100 mirrored, cropped and mirrored-and-cropped copies: a 90 % crop alone finds 96 of
# them; two crop scales (0.93 and 0.87) also 96, at twice the cost.
CROP_SCALE = 0.9
# What each variant is, in the order Features.variant_hashes holds them; "" is the image itself.
# The mirror of the crop is left out: on 1,000 faces it linked 5 pairs of different people and 1 true pair.
VARIANTS = ("mirror", f"{CROP_SCALE:.0%} crop")


@dataclass
class Features:
    hashes: np.ndarray  # (n,) uint64 pHash
    thumbs: np.ndarray  # (n, THUMB * THUMB * 3) float32, mean removed, unit length (zeros for a flat image)
    # The same for each of VARIANTS: (n, len(VARIANTS)) and (n, len(VARIANTS), THUMB * THUMB * 3); None when only the
    # images themselves are compared.
    variant_hashes: np.ndarray | None = None
    variant_thumbs: np.ndarray | None = None


def image_features(image):
    """(pHash as an int, colour thumbnail vector) of a PIL image."""
    rgb = image.convert("RGB")
    bits = imagehash.phash(rgb).hash.ravel()
    value = int("".join("1" if b else "0" for b in bits), 2)
    thumb = np.asarray(rgb.resize((THUMB, THUMB), Image.BOX), dtype=np.float32).ravel()
    thumb = thumb - thumb.mean()
    norm = float(np.linalg.norm(thumb))
    return value, (thumb / norm if norm > 1e-6 else thumb)


def variants_of(image):
    """The PIL images of VARIANTS, in order: the mirror, the centre crop resized back."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    dx, dy = w * (1 - CROP_SCALE) / 2, h * (1 - CROP_SCALE) / 2
    return [rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            rgb.crop((dx, dy, w - dx, h - dy)).resize((w, h), Image.BICUBIC)]


def image_and_variant_features(image):
    """((pHash, thumbnail) of the image, [(pHash, thumbnail) of each of VARIANTS])."""
    return image_features(image), [image_features(variant) for variant in variants_of(image)]


def features_from(rows):
    """Features of [((pHash, thumbnail), [(pHash, thumbnail) per variant]), ...]."""
    n = len(rows)
    hashes = np.array([own[0] for own, _ in rows], dtype=np.uint64)
    thumbs = np.array([own[1] for own, _ in rows], dtype=np.float32).reshape(n, THUMB * THUMB * 3)
    variant_hashes = np.array([[v[0] for v in variants] for _, variants in rows], dtype=np.uint64).reshape(
        n, len(VARIANTS))
    variant_thumbs = np.array([[v[1] for v in variants] for _, variants in rows], dtype=np.float32).reshape(
        n, len(VARIANTS), THUMB * THUMB * 3)
    return Features(hashes, thumbs, variant_hashes, variant_thumbs)


def features_of(images, *, variants=True):
    """Features of an iterable of PIL images (with their VARIANTS unless variants=False)."""
    if variants:
        return features_from([image_and_variant_features(image) for image in images])
    hashes, thumbs = [], []
    for image in images:
        h, t = image_features(image)
        hashes.append(h)
        thumbs.append(t)
    return Features(np.array(hashes, dtype=np.uint64), np.array(thumbs, dtype=np.float32).reshape(len(hashes), -1))


def hash_distance(features, i, j):
    """pHash bits that differ, pair by pair (i and j: index arrays of one length)."""
    return np.bitwise_count(features.hashes[i] ^ features.hashes[j]).astype(np.float32)


def colour_distance(features, i, j):
    """1 - cosine of the colour thumbnails, pair by pair."""
    return 1.0 - np.einsum("ij,ij->i", features.thumbs[i], features.thumbs[j])


# name: (distance function, default limit). Candidates come from the first (the cheap hash); the rest confirm.
SIGNALS = {"phash": (hash_distance, MAX_HASH_DISTANCE), "colour": (colour_distance, MAX_COLOUR_DISTANCE)}


def _as_seen(features, v):
    """Features whose image i is image i's variant v (None: the image itself), for the left side of a comparison."""
    if v is None:
        return features
    return Features(features.variant_hashes[:, v], features.variant_thumbs[:, v])


def _within(left, right, a, b, limits):
    """The pairs (a[k], b[k]) that every signal after the hash puts within its limit, left's a against right's b."""
    for name, (distance, _) in SIGNALS.items():
        if name != "phash" and len(a):
            # Distances between left's a and right's b: stacked, so that a signal's (features, i, j) addresses both.
            stacked = Features(np.concatenate([left.hashes[a], right.hashes[b]]),
                               np.concatenate([left.thumbs[a], right.thumbs[b]]))
            k = np.arange(len(a))
            close = distance(stacked, k, k + len(a)) <= limits[name]
            a, b = a[close], b[close]
    return a, b


def near_pairs(features, limits=None, *, progress=None):
    """[(i, j, hash distance, how)] with i < j for every pair that each signal puts within its limit, `how` naming
    the variant of one image that matched the other as it is ("" for the images themselves). Each pair is listed
    once, with the first way found: the images themselves, then VARIANTS in order. `limits` overrides SIGNALS'
    defaults by name; `progress(fraction)` is called between blocks."""
    limits = {name: default for name, (_, default) in SIGNALS.items()} | (limits or {})
    hashes = features.hashes
    n = len(hashes)
    ways = [None] + (list(range(len(VARIANTS))) if features.variant_hashes is not None else [])
    rows = max(1, BLOCK_PAIRS // max(n, 1))
    found = {}
    steps, step = len(ways) * ((n + rows - 1) // rows), 0
    for v in ways:
        left = _as_seen(features, v)
        for start in range(0, n, rows):
            block = left.hashes[start : start + rows]
            # The image itself: only the pairs (i, j > i). A variant: every ordered pair, since i's crop may match j
            # where j's crop does not match i.
            first = start if v is None else 0
            distances = np.bitwise_count(block[:, None] ^ hashes[None, first:])
            a, b = np.nonzero(distances <= limits["phash"])
            a, b = a + start, b + first
            keep = a < b if v is None else a != b
            a, b = _within(left, features, a[keep], b[keep], limits)
            bits = np.bitwise_count(left.hashes[a] ^ hashes[b]).tolist()
            for i, j, d in zip(a.tolist(), b.tolist(), bits):
                found.setdefault((min(i, j), max(i, j)), (float(d), "" if v is None else VARIANTS[v]))
            step += 1
            if progress:
                progress(min(1.0, step / steps))
    return [(i, j, d, how) for (i, j), (d, how) in sorted(found.items())]


def groups_of(n, pairs):
    """Connected components of size >= 2 of the pairs over n items: a list of sorted index lists, ordered by their
    first index."""
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, *_ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members = {}
    for x in range(n):
        members.setdefault(find(x), []).append(x)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])


def pair_scores(found, truth):
    """Pairwise precision and recall of found groups against true groups (each an iterable of item keys): the
    pairs in a common found group that share a true group, over all found pairs (precision) and over all true pairs
    (recall). {"precision", "recall", "found_pairs", "true_pairs", "right_pairs"}; None where undefined."""
    def pairs(groups):
        out = set()
        for group in groups:
            g = sorted(group)
            out |= {(a, b) for k, a in enumerate(g) for b in g[k + 1 :]}
        return out

    f, t = pairs(found), pairs(truth)
    right = len(f & t)
    return {"precision": right / len(f) if f else None, "recall": right / len(t) if t else None,
            "found_pairs": len(f), "true_pairs": len(t), "right_pairs": right}
