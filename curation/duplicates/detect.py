"""Which images of a set are near-duplicates: the same picture captured again (shifted, rescaled, re-exposed,
recompressed, mirrored, cropped again), not merely the same kind of picture.

Two signals must both agree that a pair is a near-duplicate:
- the perceptual hash (pHash as imagehash computes it: the signs against their median of the low-frequency DCT of a
  32 x 32 grey thumbnail, 64 bits), within `max_hash_distance` bits: the pair has the same coarse structure.
- the colour thumbnail (8 x 8 RGB, its mean removed, unit length), within `max_colour_distance` (1 - cosine): the
  same colours in the same places, whatever the exposure. Faces share a layout (the hash alone links different
  people framed alike); blank frames share a hash of noise (the thumbnail alone links any two of a colour).

Copies made differently (a mirrored face, a face cropped again with other margins) move both signals far, so
each image is also described as its VARIANTS: its mirror, and a centre crop of CROP_SCALE of its side. A pair
(i, j) is linked when, for the image itself or one of its variants on i's side, both signals put it within their
limits of image j as it is. A crop of 2-8 % of the side on each side (scale 0.84-0.96) lands close to the 90 %
centre crop; a crop of i is found from i's crop variant, an original from its crop's side only when the original
is the cropped one, so every ordered pair is compared.

No pair is compared unless an index proposes it (near_pairs): the colour limit is a radius (for unit vectors,
1 - cosine <= c is a Euclidean distance <= sqrt(2c)), and an orthogonal projection never lengthens a distance, so
a radius search over the thumbnails projected onto their first PROJECTED principal axes (scikit-learn's KD-tree)
returns every pair within the colour limit and some more; both signals then confirm each candidate exactly. The
images are described in batches (describe), so a caller streams them.

A signal is a function of (features, i, j) giving the distance of each pair (i[k], j[k]); a pair is linked when
every signal is within its limit (SIGNALS), and a pair whose hashes differ in more than TIGHT_ABOVE_BITS bits only
when its colour is within TIGHT_COLOUR too: a loose hash must be made up for by a tight colour match.

The job then looks closer at each link (align.py): its two pictures aligned at 32 px and compared pixel by pixel,
which tells different people framed alike (the pairs that pass both thumbnails by chance, more of them the larger
the set) from copies; near_pairs gives it what it needs (which image's variant matched, and the colour distance).

Groups are not the connected components of the links: at 30,000 faces, links that pass both signals by chance
chain different people into large groups (pairs precision 0.065). They are grown by average linkage (groups_of):
links are taken closest first, and two groups join only where at least LINKED_SHARE of the pairs between them are
linked, so one chance link between two groups (or a chain A~B~C~D) joins nothing, while a tight group of copies,
each linked to the others, joins whole.
"""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_BITS = 64
GREY = 32  # side of the grey thumbnail the pHash is the DCT of
THUMB = 8
DIM = THUMB * THUMB * 3
# Chosen on one generated set (seed 0 of benchmarks/duplicates.py) and measured on others; docs/results.md has the
# figures. The hash is the loose gate (faces framed alike differ in few bits; a different structure in many), the
# thumbnail the tight test.
MAX_HASH_DISTANCE = 22  # of 64 bits
MAX_COLOUR_DISTANCE = 0.03  # 1 - cosine of the mean-removed 8 x 8 RGB thumbnails
# Beyond this many bits a pair must match in colour within TIGHT_COLOUR (measured at 2,000-30,000 faces: most wrong
# links of faces framed alike pass the hash loosely; true copies that differ in many bits still match in colour).
TIGHT_ABOVE_BITS = 20
TIGHT_COLOUR = 0.004
# A linked pair is kept only if, aligned, its residual is within this (align.py; the find_duplicates parameter
# max_residual; measured on 30,000 faces).
MAX_RESIDUAL = 0.04
LINKED_SHARE = 0.5  # groups_of: two groups join where at least this share of the pairs between them are linked
# Measured on 600 faces with 100 mirrored, cropped and mirrored-and-cropped copies: a 90 % crop alone finds 96 of
# them; two crop scales (0.93 and 0.87) also 96, at twice the cost.
CROP_SCALE = 0.9
# What each variant is, in the order Features.variant_hashes holds them; "" is the image itself.
# The mirror of the crop is left out: on 1,000 faces it linked 5 pairs of different people and 1 true pair.
VARIANTS = ("mirror", f"{CROP_SCALE:.0%} crop")
PROJECTED = 12  # principal axes of the thumbnails the candidate index searches in
FIT_SAMPLE = 20_000  # thumbnails the axes are fitted on
QUERY_BATCH = 4096  # images whose candidates are looked up at once


@dataclass
class Features:
    hashes: np.ndarray  # (n,) uint64 pHash
    thumbs: np.ndarray  # (n, DIM) float32 or float16, mean removed, unit length (zeros for a flat image)
    # The same for each of VARIANTS: (n, len(VARIANTS)) and (n, len(VARIANTS), DIM); None when only the images
    # themselves are compared.
    variant_hashes: np.ndarray | None = None
    variant_thumbs: np.ndarray | None = None


def _dct_rows():
    """The first 8 rows of the unnormalised DCT-II on GREY points (scipy.fftpack.dct's, which imagehash uses)."""
    k = np.arange(8)[:, None]
    x = np.arange(GREY)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * GREY))


_DCT = _dct_rows()
_MIRROR_SIGNS = np.where(np.arange(8) % 2, -1.0, 1.0)  # a left-right flip negates the odd horizontal frequencies
_BIT_WEIGHTS = (np.uint64(1) << np.arange(HASH_BITS - 1, -1, -1, dtype=np.uint64))


def _phash(low):
    """64-bit pHashes of (m, 8, 8) low-frequency DCT blocks: bit set where above the block's median, row-major, the
    first bit the most significant (imagehash's order)."""
    bits = low.reshape(len(low), -1) > np.median(low.reshape(len(low), -1), axis=1, keepdims=True)
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


def _unit(thumbs):
    """Mean-removed, unit-length rows of (m, DIM) float32 (zero rows stay zero)."""
    thumbs = thumbs - thumbs.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(thumbs, axis=1, keepdims=True)
    return np.where(norms > 1e-6, thumbs / np.maximum(norms, 1e-6), 0.0).astype(np.float32)


def _crop_box(w, h):
    dx, dy = w * (1 - CROP_SCALE) / 2, h * (1 - CROP_SCALE) / 2
    return (dx, dy, w - dx, h - dy)


def thumbnails(image):
    """What describe_thumbnails needs of one PIL image (it decodes the image): (grey 32 x 32 of the image, of its
    crop variant; RGB 8 x 8 of the image, of its crop variant) as arrays."""
    rgb = image.convert("RGB")
    grey = rgb.convert("L")
    box = _crop_box(*rgb.size)
    return (np.asarray(grey.resize((GREY, GREY), Image.LANCZOS)),
            np.asarray(grey.resize((GREY, GREY), Image.LANCZOS, box=box)),
            np.asarray(rgb.resize((THUMB, THUMB), Image.BOX)),
            np.asarray(rgb.resize((THUMB, THUMB), Image.BOX, box=box)))


def describe(images, *, variants=True):
    """Features of a batch of PIL images."""
    return describe_thumbnails([thumbnails(image) for image in images], variants=variants)


def describe_thumbnails(parts, *, variants=True):
    """Features of a batch of images' thumbnails(): their DCTs in one matrix product, the mirror's hash and
    thumbnail from the image's own (a flip negates the odd horizontal frequencies and reverses the thumbnail's
    columns)."""
    m = len(parts)
    if not m:
        empty = np.zeros((0, DIM), np.float32)
        return Features(np.zeros(0, np.uint64), empty, np.zeros((0, len(VARIANTS)), np.uint64) if variants else None,
                        np.zeros((0, len(VARIANTS), DIM), np.float32) if variants else None)
    grey = np.stack([p[0] for p in parts] + [p[1] for p in parts]).astype(np.float64)
    low = _DCT @ grey @ _DCT.T  # (2m, 8, 8): batched matrix products (an einsum is 20 times slower)
    own_low, crop_low = low[:m], low[m:]
    small = np.stack([p[2] for p in parts]).astype(np.float32)  # (m, 8, 8, 3)
    hashes = _phash(own_low)
    thumbs = _unit(small.reshape(m, DIM))
    if not variants:
        return Features(hashes, thumbs)
    mirror_thumbs = _unit(small[:, :, ::-1].reshape(m, DIM))
    crop_thumbs = _unit(np.stack([p[3] for p in parts]).astype(np.float32).reshape(m, DIM))
    variant_hashes = np.stack([_phash(own_low * _MIRROR_SIGNS), _phash(crop_low)], axis=1)
    return Features(hashes, thumbs, variant_hashes, np.stack([mirror_thumbs, crop_thumbs], axis=1))


def image_features(image):
    """(pHash as an int, colour thumbnail vector) of a PIL image."""
    f = describe([image], variants=False)
    return int(f.hashes[0]), f.thumbs[0]


def features_of(images, *, variants=True, batch=1024):
    """Features of an iterable of PIL images (with their VARIANTS unless variants=False), described in batches."""
    out, chunk = [], []
    for image in images:
        chunk.append(image)
        if len(chunk) == batch:
            out.append(describe(chunk, variants=variants))
            chunk = []
    out.append(describe(chunk, variants=variants))
    return concat(out)


def concat(parts):
    """One Features of several, in order."""
    variants = parts[0].variant_hashes is not None
    return Features(np.concatenate([p.hashes for p in parts]), np.concatenate([p.thumbs for p in parts]),
                    np.concatenate([p.variant_hashes for p in parts]) if variants else None,
                    np.concatenate([p.variant_thumbs for p in parts]) if variants else None)


def hash_distance(features, i, j):
    """pHash bits that differ, pair by pair (i and j: index arrays of one length)."""
    return np.bitwise_count(features.hashes[i] ^ features.hashes[j]).astype(np.float32)


def colour_distance(features, i, j):
    """1 - cosine of the colour thumbnails, pair by pair."""
    return 1.0 - np.einsum("ij,ij->i", features.thumbs[i].astype(np.float32), features.thumbs[j].astype(np.float32))


# name: (distance function, default limit). Every candidate the index proposes is confirmed by each.
SIGNALS = {"phash": (hash_distance, MAX_HASH_DISTANCE), "colour": (colour_distance, MAX_COLOUR_DISTANCE)}


def _as_seen(features, v):
    """Features whose image i is image i's variant v (None: the image itself), for the left side of a comparison."""
    if v is None:
        return features
    return Features(features.variant_hashes[:, v], features.variant_thumbs[:, v])


def _within(left, right, a, b, limits):
    """The pairs (a[k], b[k]) that every signal puts within its limit, left's a against right's b, less those whose
    hashes differ in more than TIGHT_ABOVE_BITS bits and whose colour is not within TIGHT_COLOUR."""
    if not len(a):
        return a, b
    # Distances between left's a and right's b: stacked, so that a signal's (features, i, j) addresses both.
    stacked = Features(np.concatenate([left.hashes[a], right.hashes[b]]),
                       np.concatenate([left.thumbs[a], right.thumbs[b]]))
    k = np.arange(len(a))
    keep = np.ones(len(a), bool)
    for name, (distance, _) in SIGNALS.items():
        keep[keep] = distance(stacked, k[keep], k[keep] + len(a)) <= limits[name]
    if keep.any():
        bits = hash_distance(stacked, k[keep], k[keep] + len(a))
        loose = np.flatnonzero(keep)[bits > TIGHT_ABOVE_BITS]
        if len(loose):
            keep[loose] = colour_distance(stacked, loose, loose + len(a)) <= TIGHT_COLOUR
    return a[keep], b[keep]


class CandidateIndex:
    """The thumbnails projected onto their first PROJECTED principal axes, in a KD-tree: `near(queries, radius)`
    gives, for each query thumbnail, the images whose thumbnails may lie within `radius` (Euclidean) of it, a
    superset of those that do (a projection never lengthens a distance)."""

    def __init__(self, thumbs, seed=0):
        from sklearn.neighbors import KDTree

        n, dim = thumbs.shape
        rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, FIT_SAMPLE), replace=False))
        # The axes from the sample's covariance, summed QUERY_BATCH rows at a time (a dim x dim matrix, never the
        # sample whole): eigh's eigenvectors are orthonormal, so the projection is a contraction whatever the sample.
        total, products = np.zeros(dim), np.zeros((dim, dim))
        for start in range(0, len(rows), QUERY_BATCH):
            x = np.asarray(thumbs[rows[start : start + QUERY_BATCH]], dtype=np.float64)
            total += x.sum(axis=0)
            products += x.T @ x
        self.mean = total / max(len(rows), 1)
        covariance = products / max(len(rows), 1) - np.outer(self.mean, self.mean)
        dims = min(PROJECTED, dim)
        self.axes = np.linalg.eigh(covariance)[1][:, ::-1][:, :dims].T.copy()
        self.tree = KDTree(np.concatenate([self.project(thumbs[s : s + QUERY_BATCH])
                                           for s in range(0, n, QUERY_BATCH)] or [np.zeros((0, dims))]))

    def project(self, thumbs):
        return (np.asarray(thumbs, dtype=np.float64) - self.mean) @ self.axes.T

    def near(self, thumbs, radius):
        found = self.tree.query_radius(self.project(thumbs), r=radius)
        counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        return np.repeat(np.arange(len(found)), counts), (np.concatenate(found) if len(found) else
                                                           np.zeros(0, np.int64))


def near_pairs(features, limits=None, *, progress=None, workers=None):
    """[(i, j, hash distance, how, source, colour distance)] with i < j for every pair that each signal puts within
    its limit (and a pair beyond TIGHT_ABOVE_BITS within TIGHT_COLOUR): `how` names the variant of image `source` (i
    or j) that matched the other image as it is ("" for the images themselves), and the distances are those of that
    match. Each pair is listed once, with the first way found: the images themselves, then VARIANTS in order.
    Candidates come from a CandidateIndex, never all pairs, searched on `workers` threads (default: one a CPU this
    process may use). `limits` overrides SIGNALS' defaults by name; `progress(fraction)` is called between batches
    (it may raise to stop)."""
    limits = {name: default for name, (_, default) in SIGNALS.items()} | (limits or {})
    hashes = features.hashes
    n = len(hashes)
    if n < 2:
        return []
    ways = [None] + (list(range(len(VARIANTS))) if features.variant_hashes is not None else [])
    index = CandidateIndex(features.thumbs)
    # 1 - cos <= c  <=>  |a - b|^2 <= 2c for unit vectors (a zero thumbnail is never within c < 1 of anything)
    radius = float(np.sqrt(2 * max(limits["colour"], 0.0))) * (1 + 1e-3) + 1e-6

    def batch(v, start):
        left = _as_seen(features, v)
        a, b = index.near(left.thumbs[start : start + QUERY_BATCH], radius)
        a = a + start
        # The image itself: only the pairs (i, j > i). A variant: every ordered pair, since i's crop may match j where
        # j's crop does not match i.
        keep = a < b if v is None else a != b
        a, b = _within(left, features, a[keep], b[keep], limits)
        bits = np.bitwise_count(left.hashes[a] ^ hashes[b])
        colour = 1.0 - np.einsum("ij,ij->i", left.thumbs[a].astype(np.float32), features.thumbs[b].astype(np.float32))
        return v, a, b, bits, colour

    found = {}
    tasks = [(v, start) for v in ways for start in range(0, n, QUERY_BATCH)]
    # The KD-tree's search runs without the GIL: batches are searched on `workers` threads, and their pairs taken in
    # the batches' order (so the first way found is the same), at most 2 x workers batches ahead.
    workers = max(1, workers or len(os.sched_getaffinity(0)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for step in range(len(tasks)):
            while len(pending) < 2 * workers and step + len(pending) < len(tasks):
                pending.append(pool.submit(batch, *tasks[step + len(pending)]))
            v, a, b, bits, colour = pending.popleft().result()
            how = "" if v is None else VARIANTS[v]
            for i, j, d, c in zip(a.tolist(), b.tolist(), bits.tolist(), colour.tolist()):
                found.setdefault((min(i, j), max(i, j)), (float(d), how, i, c))
            if progress:
                try:
                    progress(min(1.0, (step + 1) / len(tasks)))
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
    return [(i, j, *found[i, j]) for i, j in sorted(found)]


def groups_of(n, pairs, *, share=LINKED_SHARE):
    """Groups of size >= 2 of the linked pairs over n items by average linkage: a list of sorted index lists,
    ordered by their first index. Pairs (i, j, distance, ...) are taken closest first (then by i, j; a pair without
    a distance counts as 0), and the groups of i and j join where at least `share` of the pairs between them are
    linked: a chain of links between images that are not linked to each other stays apart. Only the items in a pair
    are held (n is their bound). share=0 gives the connected components."""
    linked = {}
    for i, j, *rest in pairs:
        if not (0 <= i < n and 0 <= j < n):
            raise ValueError(f"pair ({i}, {j}) outside the {n} items")
        if i != j:
            linked.setdefault(i, set()).add(j)
            linked.setdefault(j, set()).add(i)
    group = {x: x for x in linked}  # item -> its group's name (the group's first item)
    members = {x: [x] for x in linked}  # group name -> its items
    order = sorted(((rest[0] if rest else 0.0), min(i, j), max(i, j)) for i, j, *rest in pairs if i != j)
    for _, i, j in order:
        a, b = group[i], group[j]
        if a == b:
            continue
        if len(members[a]) > len(members[b]):
            a, b = b, a
        between = sum(1 for x in members[a] for y in linked[x] if group[y] == b)
        if between < share * len(members[a]) * len(members[b]):
            continue
        keep, gone = min(a, b), max(a, b)
        for x in members[gone]:
            group[x] = keep
        members[keep] += members.pop(gone)
    return sorted((sorted(m) for m in members.values() if len(m) > 1), key=lambda m: m[0])


def nearest_in_groups(groups, pairs):
    """{item: (distance, how)} of each grouped item's closest link to a member of its own group: with average
    linkage an item's closest link may lead to a group it did not join (every member has one inside its own)."""
    group_of = {x: k for k, group in enumerate(groups) for x in group}
    nearest = {}
    for i, j, distance, how, *_ in pairs:
        if i in group_of and group_of[i] == group_of.get(j):
            for x in (i, j):
                if x not in nearest or distance < nearest[x][0]:
                    nearest[x] = (distance, how)
    return nearest


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
