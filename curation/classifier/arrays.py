"""The tensor cache on disk: the images of a selection decoded once per size into one memory-mapped uint8 array
(training.cache), stored under DATA_DIR/cache/ by a key that changes whenever the set of files changes."""
import hashlib
from pathlib import Path

import numpy as np
from django.conf import settings

from training.cache import build_cache, open_cache


def _key(items, size):
    digest = hashlib.sha256(f"{size}".encode())
    for item in items:
        digest.update(f"{item.kind}:{item.id}:{item.content_hash};".encode())
    return digest.hexdigest()[:24]


def load_arrays(items, size, *, on_progress=None):
    """(images uint8 (N, S, S, 3), labels int64 (N,)) for items, decoding only on the first use of this set. The
    images are memory-mapped read-only from the cache file: index them by batch, do not copy them whole."""
    labels = np.array([i.label for i in items], dtype=np.int64)
    if not items:
        return np.empty((0, size, size, 3), dtype=np.uint8), labels
    path = Path(settings.DATA_DIR) / "cache" / _key(items, size)
    ids = [i.id for i in items]
    cache = open_cache(path, expect_ids=ids)
    if cache is None:
        cache = build_cache(path, ids, [Path(settings.MEDIA_ROOT) / i.file for i in items], size,
                            on_progress=on_progress)
    return cache.images, labels
