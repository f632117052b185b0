"""Checks on one file before it becomes an Image: where it is, what it is, how big it is. No Django."""
import hashlib
import os
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePosixPath

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

# MPO is how Pillow names a JPEG with a multi-picture extension (most phone cameras).
ALLOWED_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "WEBP"}


class BadFile(Exception):
    """A file that cannot be imported; `reason` is a short code, the message says why in words."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    width: int
    height: int
    format: str


def safe_join(root, relative):
    """Resolve `relative` under `root`; BadFile('unsafe_path') if it is absolute or escapes root (.., symlink)."""
    rel = str(relative).replace("\\", "/")
    if rel.startswith("/") or PurePosixPath(rel).is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        raise BadFile("unsafe_path", f"absolute path {relative!r} is not allowed; paths must be relative to the dataset root")
    root = Path(root).resolve()
    candidate = root / rel
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        how = "through a symlink" if ".." not in PurePosixPath(rel).parts else "with '..'"
        raise BadFile("unsafe_path", f"path {relative!r} leads outside the dataset root {how}")
    return candidate


def read_image(path=None, *, data=None, max_bytes, max_pixels):
    """Read and fully decode one image; returns CheckedImage or raises BadFile with the reason."""
    if data is None:
        path = Path(path)
        if not path.exists():
            raise BadFile("missing_file", "file does not exist")
        if not path.is_file():
            raise BadFile("not_image", "not a regular file")
        size = os.path.getsize(path)
        if size > max_bytes:
            raise BadFile("file_too_big", f"file has {size} bytes, over the limit of {max_bytes}")
        data = path.read_bytes()
    if len(data) == 0:
        raise BadFile("not_image", "empty file")
    # Let our own limit, not Pillow's default, decide what is too big.
    PILImage.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        # A decompression bomb is an error here, not a warning.
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(BytesIO(data)) as im:
                fmt, (width, height) = im.format, im.size
                if fmt not in ALLOWED_FORMATS:
                    raise BadFile("format_not_allowed", f"{fmt} images are not accepted (allowed: {', '.join(sorted(ALLOWED_FORMATS))})")
                if width * height > max_pixels:
                    raise BadFile("too_many_pixels", f"{width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
                im.verify()
            with PILImage.open(BytesIO(data)) as im:
                im.load()
        except BadFile:
            raise
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
            raise BadFile("too_many_pixels", str(exc)) from None
        except UnidentifiedImageError:
            raise BadFile("not_image", "not an image file Pillow can identify") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise BadFile("corrupt", f"corrupt or truncated image: {exc}") from None
    return CheckedImage(data=data, sha256=hashlib.sha256(data).hexdigest(), width=width, height=height, format=fmt)
