"""Two dimensions from many: UMAP (umap-learn) where it is installed and asked for, else PCA in numpy.

Pure numpy and umap; no Django. Embeddings arrive as a (possibly memory-mapped, float16) array and are read a block at
a time, so a projection of 100,000 x 512 never holds a float64 copy of the whole file."""
import importlib.util

import numpy as np

METHODS = ("auto", "umap", "pca")
BLOCK = 65536
# UMAP's neighbours: its default; fewer for tiny sets (it needs n > n_neighbors).
UMAP_NEIGHBOURS = 15


class ProjectionError(ValueError):
    """Embeddings that cannot be projected; the message names the problem."""


def umap_available():
    return importlib.util.find_spec("umap") is not None


def method_for(method):
    """The method a job asking for `method` uses: auto -> umap where it is installed, else pca."""
    if method not in METHODS:
        raise ProjectionError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "auto":
        return "umap" if umap_available() else "pca"
    if method == "umap" and not umap_available():
        raise ProjectionError("method umap needs umap-learn (pip install -r requirements.txt); use method pca")
    return method


def _check(features):
    if features.ndim != 2 or features.shape[0] < 3 or features.shape[1] < 2:
        raise ProjectionError(f"a map needs at least 3 embeddings of at least 2 dimensions, not shape "
                              f"{tuple(features.shape)}")


def pca_2d(features, progress=None):
    """(n, 2) float32: the embeddings' first two principal components. The covariance is summed a block at a time in
    float64; each axis's sign is fixed (its largest loading positive), so the same embeddings always give the same
    picture."""
    _check(features)
    n, d = features.shape
    total, outer = np.zeros(d), np.zeros((d, d))
    for start in range(0, n, BLOCK):
        block = np.asarray(features[start:start + BLOCK], dtype=np.float64)
        if not np.isfinite(block).all():
            row = start + int(np.flatnonzero(~np.isfinite(block).all(1))[0])
            raise ProjectionError(f"embedding row {row + 1} holds NaN or infinity")
        total += block.sum(0)
        outer += block.T @ block
    mean = total / n
    cov = outer / n - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    axes = vectors[:, ::-1][:, :2]
    axes *= np.where(axes[np.abs(axes).argmax(0), [0, 1]] < 0, -1.0, 1.0)
    if progress:
        progress(0.5)
    out = np.empty((n, 2), np.float32)
    for start in range(0, n, BLOCK):
        out[start:start + BLOCK] = (np.asarray(features[start:start + BLOCK], dtype=np.float64) - mean) @ axes
    return out


def umap_2d(features, seed=0):
    """(n, 2) float32 by UMAP on cosine distance (the embeddings' directions, as Datalab's neighbours read them);
    seeded, one thread (reproducible)."""
    _check(features)
    import umap  # numba compiles on first use: only the job's process pays for it

    x = np.asarray(features, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ProjectionError(f"embedding row {int(np.flatnonzero(~np.isfinite(x).all(1))[0]) + 1} holds NaN or "
                              f"infinity")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(UMAP_NEIGHBOURS, len(x) - 1), metric="cosine",
                        random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def project(features, method, *, seed=0, progress=None):
    """(xy float32 (n, 2), the method used)."""
    used = method_for(method)
    xy = umap_2d(features, seed=seed) if used == "umap" else pca_2d(features, progress=progress)
    return xy, used
