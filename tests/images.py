"""Small helpers that write real image files for tests, and the square images the training tests learn."""
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path, *, seed, size=32):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def write_imagefolder(root, counts, *, size=32, seed=0):
    """counts: {label: n} or {split: {label: n}}; returns the number of files written."""
    root = Path(root)
    n = 0
    for key, value in counts.items():
        if isinstance(value, dict):
            for label, k in value.items():
                for i in range(k):
                    write_png(root / key / label / f"{i:05d}.png", seed=seed * 1_000_003 + n, size=size)
                    n += 1
        else:
            for i in range(value):
                write_png(root / key / f"{i:05d}.png", seed=seed * 1_000_003 + n, size=size)
                n += 1
    return n


def image_bytes(*, seed, size=32, format="PNG"):
    """The encoded bytes of a random RGB image (distinct content per seed)."""
    rng = np.random.default_rng(seed)
    buf = BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format=format)
    return buf.getvalue()


def write_bytes(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_bomb_png(path, side=10_000):
    """A decompression bomb: a few KB on disk, side*side pixels (100 M by default) once decoded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (side, side)).save(path, format="PNG")
    return path


def squares(n, size=64, seed=0):
    """Images whose class is the colour and brightness of a central square, on noise: easy but not trivial."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 8, n)
    x = rng.integers(0, 90, (n, size, size, 3), dtype=np.uint8)
    lo, hi = size // 4, 3 * size // 4
    for i, c in enumerate(y):
        x[i, lo:hi, lo:hi, c % 3] = 140 + (c // 3) * 50
    return x, y
