"""A run's out-of-fold embeddings: for each train image of oof.npz, in its row order, the penultimate-layer
embedding from the fold model that did not see the image (as its out-of-fold probabilities are), written by the
train_classifier job next to oof.npz as oof_features.npy (float16). Never in the database. Read memory-mapped, so a
web process that shows one card's nearest neighbours touches the file, not a copy of it.
"""
import functools
from pathlib import Path

import numpy as np
from django.conf import settings

OOF_FEATURES_FILE = "oof_features.npy"
NEIGHBOURS = 5


def oof_features_path(run):
    """Where `run`'s out-of-fold embeddings are (next to its oof.npz), or None for a run without oof.npz."""
    if not run.oof_file:
        return None
    return (Path(settings.MEDIA_ROOT) / run.oof_file).with_name(OOF_FEATURES_FILE)


def read_oof_features(run):
    """(image ids, float16 embeddings memory-mapped, rows aligned with the ids) of `run`, or None when the run has no
    embeddings (trained without folds, or before they were kept)."""
    path = oof_features_path(run)
    if path is None:
        return None
    oof = Path(settings.MEDIA_ROOT) / run.oof_file
    try:
        stat, oof_stat = path.stat(), oof.stat()
    except OSError:
        return None
    return _read(str(path), stat.st_mtime_ns, stat.st_size, str(oof), oof_stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read(path, mtime_ns, size, oof_path, oof_mtime_ns):
    """Cached per file version: the ids come from the oof.npz beside it, the embeddings stay on disk."""
    with np.load(oof_path) as data:
        ids = np.asarray(data["ids"], dtype=np.int64)
    features = np.load(path, mmap_mode="r")
    if features.shape[0] != len(ids):
        return None
    order = np.argsort(ids, kind="stable")
    return ids[order], order, features


def nearest_neighbours(run, image_id, k=NEIGHBOURS):
    """[(image id, cosine distance)] of the k train images whose out-of-fold embeddings are nearest to
    `image_id`'s under `run` (the image itself left out), nearest first; [] when the run has no embeddings or none
    for that image. Cosine distance, as cleanlab's Datalab uses for embeddings. No database query."""
    read = read_oof_features(run)
    if read is None:
        return []
    ids, order, features = read
    at = int(np.searchsorted(ids, image_id))
    if at >= len(ids) or ids[at] != image_id:
        return []
    row = int(order[at])
    out = []
    query = _unit(np.asarray(features[row], dtype=np.float32)[None])[0]
    best_d, best_i = np.empty(0, np.float32), np.empty(0, np.int64)
    step = 65536  # a block at a time: the whole file is never one float32 copy in memory
    for start in range(0, features.shape[0], step):
        block = _unit(np.asarray(features[start:start + step], dtype=np.float32))
        d = 1.0 - block @ query
        rows = np.arange(start, start + len(block))
        keep = rows != row
        best_d = np.concatenate([best_d, d[keep]])
        best_i = np.concatenate([best_i, rows[keep]])
        if len(best_d) > k:
            top = np.argpartition(best_d, k)[:k]
            best_d, best_i = best_d[top], best_i[top]
    by_row = np.empty(len(ids), np.int64)
    by_row[order] = ids
    for j in np.lexsort((best_i, best_d))[:k]:
        out.append((int(by_row[best_i[j]]), float(best_d[j])))
    return out


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
