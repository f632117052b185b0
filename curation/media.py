"""Files under MEDIA_ROOT that jobs write: atomic writes (a reader or a resumed job never sees half a file) and
paths stored relative to the media root. Job handlers import it (torch at its top); web processes never do."""
import logging
import os
from io import BytesIO
from pathlib import Path

import torch
from django.conf import settings
from PIL import Image

log = logging.getLogger(__name__)


def media_rel(path):
    return Path(path).relative_to(settings.MEDIA_ROOT).as_posix()


def _tmp(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_torch(obj, path):
    path, tmp = _tmp(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_resume(path):
    """The checkpoint a resumed job continues from (save_torch wrote it each epoch), or None when there is none."""
    if not path.exists():
        return None
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    log.info("resuming %s from epoch %s", path.name, checkpoint["epoch"])
    return checkpoint


def save_png(array, path):
    """Write a uint8 (H, W, 3) array as PNG; returns the file's bytes (for hashing)."""
    buf = BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    path, tmp = _tmp(path)
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return buf.getvalue()
