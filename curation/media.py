"""Files under MEDIA_ROOT that jobs write: atomic writes (a reader or a resumed job never sees half a file) and
paths stored relative to the media root."""
import os
from pathlib import Path

from django.conf import settings


def media_rel(path):
    return Path(path).relative_to(settings.MEDIA_ROOT).as_posix()


def _tmp(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_torch(obj, path):
    import torch

    path, tmp = _tmp(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_png(array, path):
    """Write a uint8 (H, W, 3) array as PNG; returns the file's bytes (for hashing)."""
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    path, tmp = _tmp(path)
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return buf.getvalue()
