"""The tensor cache: a dataset decoded once per image size into one uint8 array (N, S, S, 3), with the image ids
beside it. Training, generation and scoring slice batches from it; nothing decodes files per epoch."""
import os
from pathlib import Path

import numpy as np
from PIL import Image


def decode_images(paths, size, *, on_progress=None):
    """Decode image files to a uint8 array (N, size, size, 3) RGB, resized with antialiasing where needed."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            out[i] = np.asarray(im)
        if on_progress and i % 500 == 0:
            on_progress(i / max(len(paths), 1))
    return out


def save_cache(path, ids, images):
    """Write ids and images atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(ids, dtype=np.int64), images=images)
    os.replace(tmp, path)


def load_cache(path):
    with np.load(path) as data:
        return data["ids"], data["images"]
