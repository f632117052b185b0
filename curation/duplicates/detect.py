"""Which images of a set are near-duplicates: the same picture captured again (shifted, rescaled, re-exposed,
recompressed), not merely the same kind of picture.

Two signals must both agree that a pair is a near-duplicate:
- the perceptual hash (imagehash's pHash: the signs of the low-frequency DCT of a 32 x 32 grey thumbnail, 64
  bits), within `max_hash_distance` bits: the pair has the same coarse structure. It finds the candidates, one
  XOR and popcount per pair on one 64-bit word, in blocks.
- the colour thumbnail (8 x 8 RGB, its mean removed, unit length), within `max_colour_distance` (1 - cosine): the
  same colours in the same places, whatever the exposure. Faces share a layout (the hash alone links different
  people framed alike); blank frames share a hash of noise (the thumbnail alone links any two of a colour).

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


@dataclass
class Features:
    hashes: np.ndarray  # (n,) uint64 pHash
    thumbs: np.ndarray  # (n, THUMB * THUMB * 3) float32, mean removed, unit length (zeros for a flat image)


def image_features(image):
    """(pHash as an int, colour thumbnail vector) of a PIL image."""
    rgb = image.convert("RGB")
    bits = imagehash.phash(rgb).hash.ravel()
    value = int("".join("1" if b else "0" for b in bits), 2)
    thumb = np.asarray(rgb.resize((THUMB, THUMB), Image.BOX), dtype=np.float32).ravel()
    thumb = thumb - thumb.mean()
    norm = float(np.linalg.norm(thumb))
    return value, (thumb / norm if norm > 1e-6 else thumb)


def features_of(images):
    """Features of an iterable of PIL images."""
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


def near_pairs(features, limits=None, *, progress=None):
    """[(i, j, hash distance)] with i < j for every pair that each signal puts within its limit. `limits`
    overrides SIGNALS' defaults by name; `progress(fraction)` is called between blocks."""
    limits = {name: default for name, (_, default) in SIGNALS.items()} | (limits or {})
    hashes = features.hashes
    n = len(hashes)
    rows = max(1, BLOCK_PAIRS // max(n, 1))
    out = []
    for start in range(0, n, rows):
        block = hashes[start : start + rows]
        # Only the pairs (i, j > i): each block compares its rows with the images after its first.
        distances = np.bitwise_count(block[:, None] ^ hashes[None, start:])
        a, b = np.nonzero(distances <= limits["phash"])
        a, b = a + start, b + start
        keep = a < b
        a, b = a[keep], b[keep]
        for name, (distance, _) in SIGNALS.items():
            if name != "phash" and len(a):
                close = distance(features, a, b) <= limits[name]
                a, b = a[close], b[close]
        out += zip(a.tolist(), b.tolist(), hash_distance(features, a, b).tolist())
        if progress:
            progress(min(1.0, (start + rows) / n))
    return out


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
