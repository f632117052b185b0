"""Which images of a set are near-duplicates: the same picture captured again (shifted, rescaled, re-exposed,
recompressed, mirrored, cropped again), not merely the same kind of picture.

Two signals must both agree that a pair is a near-duplicate:
- the perceptual hash (pHash as imagehash computes it: the signs against their median of the low-frequency DCT of a
  32 x 32 grey thumbnail, 64 bits), within `max_hash_distance` bits: the pair has the same coarse structure.
- the colour thumbnail (8 x 8 RGB, its mean removed, unit length), within `max_colour_distance` (1 - cosine): the
  same colours in the same places, whatever the exposure. Faces share a layout (the hash alone links different
  people framed alike); blank frames share a hash of noise (the thumbnail alone links any two of a colour).

Copies made differently (a mirrored face, a face cropped again with other margins) move both signals far, so
each image is also described as its VARIANTS: its mirror, and crops of CROP_SCALE of its side (CROPS: at the
centre and moved diagonally by CROP_SHIFT). A pair (i, j) is linked when, for the image itself or one of its
variants on i's side, both signals put it within their limits of image j as it is. A crop of 2-8 % of the side on
each side (scale 0.84-0.96) lands close to one of the 90 % crops; a crop of i is found from i's crop variants, an
original from its crop's side only when the original is the cropped one, so every ordered pair is compared.

No pair is compared unless an index proposes it (near_pairs): the colour limit is a distance between the unit
thumbnails, searched on their PROJECTED principal axes (a superset: a projection only shortens distances) in an
inverted file (CandidateIndex, faiss): k-means cuts the thumbnails into cells of about LIST_SIZE, and each query
scans its PROBES nearest cells, so the work per image stays about constant as the set grows.
It is approximate: a pair whose thumbnails fall in cells far apart is missed (measured on 300,000 faces: none of the
copies' pairs, 1 in 10,000 of all pairs within the limit); under LIST_SIZE x PROBES images it scans every cell and is
exact. Both signals then confirm each candidate exactly. (The exact search this replaced, a KD-tree over the
thumbnails projected on 12 principal axes, took 25 minutes at 300,000 faces: a query's radius spans most of the
lower axes' spread, so the tree prunes little.) The images are described in batches (describe), so a caller streams
them.

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
# A copy cropped off centre (2 % on one side, 8 % on the other) misses the centre crop: four more crops, moved
# diagonally by CROP_SHIFT of the side, catch them (on the 30,000 faces' crops, 0.888 -> 0.957 of the pairs linked).
CROP_SHIFT = 0.015
# name (short: DuplicateMember.linked_by holds "phash+colour+aligned of <name>" in 40 characters): (dx, dy), the
# crop's offset from the centre as a share of the side.
CROPS = {f"{CROP_SCALE:.0%} crop": (0.0, 0.0),
         "crop up-left": (-CROP_SHIFT, -CROP_SHIFT),
         "crop up-right": (CROP_SHIFT, -CROP_SHIFT),
         "crop down-left": (-CROP_SHIFT, CROP_SHIFT),
         "crop down-right": (CROP_SHIFT, CROP_SHIFT)}
# What each variant is, in the order Features.variant_hashes holds them; "" is the image itself.
# The mirror of the crop is left out: on 1,000 faces it linked 5 pairs of different people and 1 true pair.
VARIANTS = ("mirror", *CROPS)
# The candidate index (CandidateIndex): about LIST_SIZE thumbnails a cell, the PROBES cells nearest a query scanned,
# k-means trained on TRAIN_PER_CELL thumbnails a cell for KMEANS_ITERATIONS. Chosen on 300,000 faces
# (docs/benchmarks.md, near-duplicates at scale).
LIST_SIZE = 128
PROBES = 16
TRAIN_PER_CELL = 40  # (faiss asks for at least 39)
KMEANS_ITERATIONS = 10
PROJECTED = 32  # principal axes the thumbnails are searched on (CandidateIndex)
QUERY_BATCH = 1024  # images whose candidates are looked up at once (a thread holds their candidates' thumbnails)


@dataclass
class Features:
    hashes: np.ndarray  # (n,) uint64 pHash
    thumbs: np.ndarray  # (n, DIM) float32 or float16, mean removed, unit length (zeros for a flat image)
    # The hashes of each of VARIANTS (n, len(VARIANTS)), and the thumbnails of each of CROPS (n, len(CROPS), DIM):
    # the mirror's thumbnail is the image's own with its columns reversed (_as_seen). None when only the images
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


def _crop_box(w, h, dx=0.0, dy=0.0):
    mx, my = w * (1 - CROP_SCALE) / 2, h * (1 - CROP_SCALE) / 2
    return (mx + dx * w, my + dy * h, w - mx + dx * w, h - my + dy * h)


def _pixels(image, mode_bands):
    """A small PIL image's pixels as a uint8 array (tobytes is several times cheaper than np.asarray here)."""
    w, h = image.size
    return np.frombuffer(image.tobytes(), np.uint8).reshape((h, w, mode_bands) if mode_bands > 1 else (h, w))


# Sides of the grey and the RGB pictures each image's crops are taken from (describe_thumbnails, _crop_operators):
# the grey one gives the crops' pHashes (their 8 x 8 lowest frequencies at GREY px), the RGB one their THUMB x THUMB
# colour thumbnails.
MASTER = 64
RGB_MASTER = 32


def thumbnails(image):
    """What describe_thumbnails needs of one PIL image (it decodes the image): (grey GREY x GREY of the image, RGB
    THUMB x THUMB of the image, grey MASTER x MASTER, RGB RGB_MASTER x RGB_MASTER) as arrays. The image's own grey
    thumbnail is imagehash's (LANCZOS); the crops' thumbnails are area averages over the two masters."""
    rgb = image.convert("RGB")
    grey = rgb.convert("L")
    return (_pixels(grey.resize((GREY, GREY), Image.LANCZOS), 1),
            _pixels(rgb.resize((THUMB, THUMB), Image.BOX), 3),
            _pixels(grey if grey.size == (MASTER, MASTER) else grey.resize((MASTER, MASTER), Image.BOX), 1),
            _pixels(rgb.resize((RGB_MASTER, RGB_MASTER), Image.BOX), 3))


def _box_matrix(n_out, n_in, lo, hi):
    """(n_out, n_in): the area averages of n_out equal cells over [lo, hi] of n_in pixels (pixel p covers [p, p+1])."""
    edges = lo + (hi - lo) * np.arange(n_out + 1) / n_out
    start, end = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(end, pixel + 1) - np.maximum(start, pixel), 0, None)
    return overlap / (end - start)


def _crop_operators():
    """Per crop of CROPS: the matrices (rows, columns) that give its GREY thumbnail's 8 x 8 low-frequency DCT block
    from a MASTER x MASTER grey picture (DCT x area averages: low = Y @ grey @ X.T), and its THUMB x THUMB RGB
    thumbnail from an RGB_MASTER x RGB_MASTER one (area averages: thumb = Y @ channel @ X.T). Cropping and resizing
    in one linear map: a few matrix products a batch instead of two resizes a crop an image."""
    low_y, low_x, thumb_y, thumb_x = [], [], [], []
    for dx, dy in CROPS.values():
        x0, y0, x1, y1 = _crop_box(1.0, 1.0, dx, dy)
        low_y.append(_DCT @ _box_matrix(GREY, MASTER, y0 * MASTER, y1 * MASTER))
        low_x.append(_DCT @ _box_matrix(GREY, MASTER, x0 * MASTER, x1 * MASTER))
        thumb_y.append(_box_matrix(THUMB, RGB_MASTER, y0 * RGB_MASTER, y1 * RGB_MASTER))
        thumb_x.append(_box_matrix(THUMB, RGB_MASTER, x0 * RGB_MASTER, x1 * RGB_MASTER))
    return tuple(np.stack(m).astype(np.float32) for m in (low_y, low_x, thumb_y, thumb_x))


_CROP_OPERATORS = _crop_operators()


def _crop_features(greys, colours):
    """(m, k, 8, 8) low-frequency DCT blocks and (m, k, DIM) RGB thumbnails of the CROPS of (m, MASTER, MASTER)
    grey and (m, RGB_MASTER, RGB_MASTER, 3) RGB uint8 pictures."""
    low_y, low_x, thumb_y, thumb_x = _CROP_OPERATORS
    m, k = len(greys), len(CROPS)
    # The rows of every crop at once, (k 8, MASTER) @ (m, MASTER, MASTER), then each crop's columns.
    rows = (low_y.reshape(k * 8, MASTER) @ greys.astype(np.float32)).reshape(m, k, 8, MASTER)
    lows = rows @ low_x.transpose(0, 2, 1)  # (m, k, 8, 8)
    channels = np.ascontiguousarray(colours.transpose(0, 3, 1, 2), np.float32)[:, None]  # (m, 1, 3, side, side)
    thumbs = thumb_y[:, None] @ channels @ thumb_x[:, None].transpose(0, 1, 3, 2)  # (m, k, 3, THUMB, THUMB)
    return lows, thumbs.transpose(0, 1, 3, 4, 2).reshape(m, k, DIM)


def describe(images, *, variants=True):
    """Features of a batch of PIL images."""
    return describe_thumbnails([thumbnails(image) for image in images], variants=variants)


def describe_thumbnails(parts, *, variants=True):
    """Features of a batch of images' thumbnails(): their DCTs in one matrix product, the mirror's hash from the
    image's own DCT (a flip negates the odd horizontal frequencies), the crops' from the masters (_crop_features)."""
    m, k = len(parts), len(CROPS)
    if not m:
        return Features(np.zeros(0, np.uint64), np.zeros((0, DIM), np.float32),
                        np.zeros((0, len(VARIANTS)), np.uint64) if variants else None,
                        np.zeros((0, k, DIM), np.float32) if variants else None)
    own_low = _DCT @ np.stack([p[0] for p in parts]).astype(np.float64) @ _DCT.T  # (m, 8, 8): batched products
    hashes = _phash(own_low)
    thumbs = _unit(np.stack([p[1] for p in parts]).astype(np.float32).reshape(m, DIM))
    if not variants:
        return Features(hashes, thumbs)
    crop_low, crop_thumbs = _crop_features(np.stack([p[2] for p in parts]), np.stack([p[3] for p in parts]))
    crop_hashes = _phash(crop_low.reshape(m * k, 8, 8)).reshape(m, k)
    crop_thumbs = _unit(crop_thumbs.reshape(m * k, DIM)).reshape(m, k, DIM)
    variant_hashes = np.concatenate([_phash(own_low * _MIRROR_SIGNS)[:, None], crop_hashes], axis=1)
    return Features(hashes, thumbs, variant_hashes, crop_thumbs)


def image_features(image):
    """(pHash as an int, colour thumbnail vector) of a PIL image."""
    f = describe([image], variants=False)
    return int(f.hashes[0]), f.thumbs[0]


def features_of(images, *, variants=True, batch=1024):
    """Features of an iterable of PIL images (with their VARIANTS unless variants=False), described in batches."""
    return concat([describe(chunk, variants=variants) for chunk in chunks(images, batch)] or
                  [describe([], variants=variants)])


def chunks(items, size):
    """Lists of `size` consecutive items of an iterable (the last one shorter), drawn as they are needed."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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


class _Mirrored:
    """The mirrors of thumbnails (m, DIM), row by row as they are indexed: each row's columns reversed."""

    def __init__(self, thumbs):
        self.thumbs = thumbs

    def __getitem__(self, rows):
        picked = self.thumbs[rows]
        return picked.reshape(-1, THUMB, THUMB, 3)[:, :, ::-1].reshape(picked.shape)


class Int8Thumbs:
    """Unit-length thumbnails (n, k, DIM) held as int8, each row scaled by its largest component (half float16's
    memory: 1 - cosine moves by under 1e-4), for Features.variant_thumbs. `store(rows, thumbs)` fills rows; [:, c]
    gives crop c's thumbnails, which give float32 unit rows as they are indexed."""

    def __init__(self, n, k):
        self.values = np.zeros((n, k, DIM), np.int8)

    def store(self, rows, thumbs):
        scales = np.abs(thumbs).max(axis=-1, keepdims=True)
        self.values[rows] = np.round(thumbs / np.maximum(scales, 1e-12) * 127).astype(np.int8)

    def head(self, n):
        out = Int8Thumbs(0, self.values.shape[1])
        out.values = self.values[:n]
        return out

    def __getitem__(self, key):
        return _Int8Rows(self.values[key])


class _Int8Rows:
    def __init__(self, values):
        self.values = values

    def __getitem__(self, rows):
        """float32 rows, back at unit length (zero rows stay zero)."""
        rows = self.values[rows].astype(np.float32)
        norms = np.linalg.norm(rows, axis=-1, keepdims=True)
        return np.where(norms > 0, rows / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def _as_seen(features, v):
    """Features whose image i is image i's variant v (None: the image itself), for the left side of a comparison;
    its thumbnails are only indexed (thumbs[rows])."""
    if v is None:
        return features
    if VARIANTS[v] == "mirror":
        return Features(features.variant_hashes[:, v], _Mirrored(features.thumbs))
    return Features(features.variant_hashes[:, v], features.variant_thumbs[:, list(CROPS).index(VARIANTS[v])])


def _within(left, right, a, b, limits):
    """The pairs (a[k], b[k]) that every signal puts within its limit, left's a against right's b, less those whose
    hashes differ in more than TIGHT_ABOVE_BITS bits and whose colour is not within TIGHT_COLOUR: (a, b, hash
    distance, colour distance) of the pairs kept."""
    if not len(a):
        return a, b, np.zeros(0, np.float32), np.zeros(0, np.float32)
    # Distances between left's a and right's b: stacked, so that a signal's (features, i, j) addresses both.
    stacked = Features(np.concatenate([left.hashes[a], right.hashes[b]]),
                       np.concatenate([left.thumbs[a], right.thumbs[b]]))
    k = np.arange(len(a))
    keep = np.ones(len(a), bool)
    distances = {}
    for name, (distance, _) in SIGNALS.items():
        distances[name] = np.full(len(a), np.inf, np.float32)
        distances[name][keep] = distance(stacked, k[keep], k[keep] + len(a))
        keep &= distances[name] <= limits[name]
    loose = keep & (distances["phash"] > TIGHT_ABOVE_BITS)
    keep[loose] = distances["colour"][loose] <= TIGHT_COLOUR
    return a[keep], b[keep], distances["phash"][keep], distances["colour"][keep]


class CandidateIndex:
    """The thumbnails in an inverted-file index (faiss's IndexIVFScalarQuantizer, float16), after projecting them on
    their PROJECTED principal axes: k-means cuts them into about n / LIST_SIZE cells, and `near(queries, colour)`
    scans the PROBES cells nearest each query for the thumbnails within that colour distance (1 - cosine). For unit
    thumbnails 1 - cosine is half the squared distance, and a projection on orthonormal axes only shortens
    distances, so the projected search returns every pair within the limit that its cells hold, and some more (the
    caller confirms each exactly). Half the axes make the scan 4 times faster for 1.25 times the candidates (300,000
    faces, docs/benchmarks.md). A pair whose two thumbnails fall in cells far apart is missed (measured on 300,000
    faces: 1 in 10,000 of the pairs within the limit, none of the copies'); with PROBES or fewer cells (under
    LIST_SIZE x PROBES images) every cell is scanned and the search is exact."""

    def __init__(self, thumbs, seed=0):
        import faiss

        n, dim = thumbs.shape
        self.cells = max(1, n // LIST_SIZE)
        rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, TRAIN_PER_CELL * self.cells),
                                                          replace=False))
        sample = np.asarray(thumbs[rows], np.float32)
        # Principal axes of the sample (orthonormal whatever its rank), the PROJECTED of largest variance.
        self.mean = sample.mean(axis=0)
        _, axes = np.linalg.eigh(np.cov(sample - self.mean, rowvar=False) if len(sample) > 1 else np.eye(dim))
        self.axes = np.ascontiguousarray(axes[:, ::-1][:, : min(PROJECTED, dim)], np.float32)
        quantizer = faiss.IndexFlatL2(self.axes.shape[1])
        self.index = faiss.IndexIVFScalarQuantizer(quantizer, self.axes.shape[1], self.cells,
                                                   faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_L2)
        self.index.cp.seed = seed
        self.index.cp.niter = KMEANS_ITERATIONS
        self.index.train(self._project(sample))
        for start in range(0, n, QUERY_BATCH):
            self.index.add(self._project(thumbs[start : start + QUERY_BATCH]))
        self.index.nprobe = min(PROBES, self.cells)

    def _project(self, thumbs):
        return np.ascontiguousarray((np.asarray(thumbs, np.float32) - self.mean) @ self.axes)

    def near(self, thumbs, colour):
        """(query rows, image rows) of the candidate pairs: each query's thumbnails whose projections lie within the
        distance `colour` allows (a hair looser, so that float16 rounding drops none), sorted."""
        limits, _, found = self.index.range_search(self._project(thumbs), float(2.0 * colour + 2e-3))
        a = np.repeat(np.arange(len(thumbs)), np.diff(limits.astype(np.int64)))
        order = np.lexsort((found, a))
        return a[order], found[order].astype(np.int64)


def near_pairs(features, limits=None, *, progress=None, workers=None):
    """[(i, j, hash distance, how, source, colour distance)] with i < j for every pair that each signal puts within
    its limit (and a pair beyond TIGHT_ABOVE_BITS within TIGHT_COLOUR): `how` names the variant of image `source` (i
    or j) that matched the other image as it is ("" for the images themselves), and the distances are those of that
    match. Each pair is listed once, with the first way found: the images themselves, then VARIANTS in order.
    Candidates come from a CandidateIndex, never all pairs, searched on `workers` threads (default: one a CPU this
    process may use). `limits` overrides SIGNALS' defaults by name; `progress(fraction)` is called between batches
    (it may raise to stop)."""
    limits = {name: default for name, (_, default) in SIGNALS.items()} | (limits or {})
    if len(features.hashes) < 2:
        return []
    ways = [None] + (list(range(len(VARIANTS))) if features.variant_hashes is not None else [])
    workers = max(1, workers or len(os.sched_getaffinity(0)))
    import faiss

    # OpenMP's thread count is each thread's own setting: k-means on every core from this thread, then one OpenMP
    # thread in each of the search's `workers` threads (batch below), not `workers` each.
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(workers)
        index = CandidateIndex(features.thumbs)
        return _search(features, index, ways, limits, progress, workers)
    finally:
        faiss.omp_set_num_threads(threads)


def _search(features, index, ways, limits, progress, workers):
    """near_pairs' search: each way's batches looked up in the index and confirmed by every signal."""
    n = len(features.hashes)

    def batch(v, start):
        import faiss

        faiss.omp_set_num_threads(1)  # this worker thread's own setting
        left = _as_seen(features, v)
        a, b = index.near(left.thumbs[start : start + QUERY_BATCH], limits["colour"])
        a = a + start
        # The image itself: only the pairs (i, j > i). A variant: every ordered pair, since i's crop may match j where
        # j's crop does not match i.
        keep = a < b if v is None else a != b
        return (v, *_within(left, features, a[keep], b[keep], limits))

    found = {}
    tasks = [(v, start) for v in ways for start in range(0, n, QUERY_BATCH)]
    # faiss's search runs without the GIL: batches are searched on `workers` threads, and their pairs taken in the
    # batches' order (so the first way found is the same).
    for step, (v, a, b, bits, colour) in enumerate(ordered_map(lambda task: batch(*task), tasks, workers), 1):
        how = "" if v is None else VARIANTS[v]
        for i, j, d, c in zip(a.tolist(), b.tolist(), bits.tolist(), colour.tolist()):
            found.setdefault((min(i, j), max(i, j)), (float(d), how, i, c))
        if progress:
            progress(min(1.0, step / len(tasks)))
    return [(i, j, *found[i, j]) for i, j in sorted(found)]


def ordered_map(fn, items, workers):
    """fn(item) for each item of an iterable, computed on `workers` threads (useful where fn runs without the GIL)
    and yielded in the items' order; the items are drawn in the caller's thread (a database cursor stays there), at
    most 2 x workers ahead of it. When the caller stops (a cancelled job's progress raising), the items not started
    are dropped."""
    items, end = iter(items), object()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        try:
            while True:
                while len(pending) < 2 * workers and (item := next(items, end)) is not end:
                    pending.append(pool.submit(fn, item))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


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
