"""The tensor cache on disk: the images of a selection decoded once per size into one uint8 array, stored under
DATA_DIR/cache/ by a key that changes whenever the set of files changes."""
import hashlib
from pathlib import Path

import numpy as np
from django.conf import settings

from training.cache import decode_images, load_cache, save_cache


def _key(items, size):
    digest = hashlib.sha256(f"{size}".encode())
    for item in items:
        digest.update(f"{item.kind}:{item.id}:{item.content_hash};".encode())
    return digest.hexdigest()[:24]


def load_arrays(items, size, *, on_progress=None):
    """(images uint8 (N, S, S, 3), labels int64 (N,)) for items, decoding only on the first use of this set."""
    labels = np.array([i.label for i in items], dtype=np.int64)
    if not items:
        return np.empty((0, size, size, 3), dtype=np.uint8), labels
    path = Path(settings.DATA_DIR) / "cache" / f"{_key(items, size)}.npz"
    if path.exists():
        ids, images = load_cache(path)
        if len(ids) == len(items):
            return images, labels
    images = decode_images([Path(settings.MEDIA_ROOT) / i.file for i in items], size, on_progress=on_progress)
    save_cache(path, [i.id for i in items], images)
    return images, labels
