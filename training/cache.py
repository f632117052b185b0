"""The tensor cache: a dataset decoded once per image size into one uint8 array (N, S, S, 3), with the image ids
beside it. Training, generation and scoring read batches from it; nothing decodes files per epoch.

On disk a cache is two files beside each other: KEY.npy, a plain .npy array that is memory-mapped (read in pages
through the page cache, never loaded whole into process memory), and KEY.json, its manifest (format version,
shape, dtype, byte size, ids). The decode runs in parallel (threads or processes) straight into a memory-mapped
temporary file whose space is reserved up front (a full disk fails before any decoding, with an error, not a
SIGBUS halfway through). The array is renamed into place only when complete, and the manifest is written last:
a cache without a manifest that matches its array is never trusted, so a run killed halfway, a full disk or a
read-only directory leaves nothing a later run would read.

Settings (environment, read when a cache is built): FER_DECODE_WORKERS (default: the CPUs this process may use)
and FER_DECODE_BACKEND ("threads", the default: Pillow releases the GIL while it decodes and resizes; or
"processes")."""
import json
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

FORMAT_VERSION = 1
BACKENDS = ("threads", "processes")
CHUNK = 256  # images per decode task


class CacheError(RuntimeError):
    """The cache cannot be written (or read) where it was asked to be; the message names the place and why."""


def decode_workers(workers=None):
    if workers is None:
        workers = os.environ.get("FER_DECODE_WORKERS") or len(os.sched_getaffinity(0))
    try:
        workers = int(workers)
    except ValueError:
        raise ValueError(f"FER_DECODE_WORKERS must be a whole number of workers; got {workers!r}") from None
    if workers < 1:
        raise ValueError(f"decode workers must be at least 1; got {workers}")
    return workers


def decode_backend(backend=None):
    backend = backend or os.environ.get("FER_DECODE_BACKEND") or "threads"
    if backend not in BACKENDS:
        raise ValueError(f"decode backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


def decode_one(path, size):
    """One image file -> uint8 (size, size, 3) RGB, resized with antialiasing where needed."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(im)


def _decode_chunk(paths, size):
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_one(path, size)
    return out


def _decode_chunk_into(out, start, paths, size):
    for i, path in enumerate(paths):
        out[start + i] = decode_one(path, size)
    return len(paths)


def decode_images(paths, size, *, on_progress=None, workers=None, backend=None, out=None):
    """Decode image files to a uint8 array (N, size, size, 3) RGB: into `out` when given (a memory-mapped array,
    say), else into a new array. `workers` decoders run at once (threads write straight into `out`; processes
    return chunks of CHUNK images that this process copies in), never more than 2 x workers chunks in flight."""
    paths = [str(p) for p in paths]
    n = len(paths)
    if out is None:
        out = np.empty((n, size, size, 3), dtype=np.uint8)
    elif out.shape != (n, size, size, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(n, size, size, 3)}; got {out.dtype} {out.shape}")
    workers, backend = decode_workers(workers), decode_backend(backend)
    starts = list(range(0, n, CHUNK))
    if workers == 1 or len(starts) <= 1:
        for start in starts:
            _decode_chunk_into(out, start, paths[start : start + CHUNK], size)
            if on_progress:
                on_progress(min(start + CHUNK, n) / max(n, 1))
        return out
    if backend == "threads":
        pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    else:  # spawn, not fork: the caller may hold torch's threads, which a forked child would inherit stuck
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    done, pending, todo = 0, {}, iter(starts)
    try:
        while True:
            while len(pending) < 2 * workers:
                start = next(todo, None)
                if start is None:
                    break
                part = paths[start : start + CHUNK]
                if backend == "threads":
                    pending[pool.submit(_decode_chunk_into, out, start, part, size)] = start
                else:
                    pending[pool.submit(_decode_chunk, part, size)] = start
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                start = pending.pop(fut)
                result = fut.result()  # a decode error raises here
                if backend == "processes":
                    out[start : start + len(result)] = result
                done += len(result) if backend == "processes" else result
            if on_progress:
                on_progress(done / n)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def cache_files(path):
    """(array, manifest) paths of the cache at `path` (any suffix is dropped: KEY, KEY.npy and KEY.json name it)."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".npy", ".json", ".npz") else path
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")


@dataclass
class TensorCache:
    path: Path  # the .npy
    ids: np.ndarray  # int64 (N,)
    images: np.ndarray  # uint8 (N, S, S, 3), memory-mapped read-only

    @property
    def nbytes(self):
        return int(self.images.nbytes)


def _header(shape):
    return {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}


def _unlink(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError:  # a read-only directory: nothing was written there either
            pass


def build_cache(path, ids, paths, size, *, on_progress=None, workers=None, backend=None):
    """Decode `paths` into the cache at `path` (ids beside them) and return it opened; see the module docstring.

    Raises CacheError naming the directory when it cannot be created or written (read-only, full, not a
    directory); any failure (that, or an image that does not decode) removes what this call wrote."""
    array_path, manifest_path = cache_files(path)
    folder = array_path.parent
    ids = np.asarray(ids, dtype=np.int64)
    shape = (len(paths), size, size, 3)
    if len(ids) != len(paths):
        raise ValueError(f"{len(ids)} ids for {len(paths)} images")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot create the tensor cache directory {folder}: {exc.strerror or exc}") from exc
    tag = f"{os.getpid()}.{id(ids):x}.tmp"
    tmp_array = folder / f".{array_path.name}.{tag}"
    tmp_manifest = folder / f".{manifest_path.name}.{tag}"
    committed = False
    try:
        try:
            _unlink(manifest_path)  # an older manifest must never vouch for the array written below
            with open(tmp_array, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, _header(shape))
                offset = fh.tell()
                # Reserve the blocks now: writing through a memory map into a full disk kills with SIGBUS.
                os.posix_fallocate(fh.fileno(), 0, offset + int(np.prod(shape)))
        except OSError as exc:
            raise CacheError(f"cannot write the tensor cache in {folder}: {exc.strerror or exc} "
                             f"({np.prod(shape) / 1e6:.0f} MB needed)") from exc
        if shape[0]:
            out = np.lib.format.open_memmap(tmp_array, mode="r+")
            decode_images(paths, size, on_progress=on_progress, workers=workers, backend=backend, out=out)
            out.flush()
            del out
        try:
            with open(tmp_array, "rb+") as fh:
                os.fsync(fh.fileno())
            manifest = {"version": FORMAT_VERSION, "shape": list(shape), "dtype": "uint8",
                        "bytes": os.path.getsize(tmp_array), "ids": ids.tolist()}
            with open(tmp_manifest, "w") as fh:
                json.dump(manifest, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_array, array_path)
            os.replace(tmp_manifest, manifest_path)  # the commit: from here on the cache is trusted
            committed = True
        except OSError as exc:
            raise CacheError(f"cannot write the tensor cache in {folder}: {exc.strerror or exc}") from exc
    finally:
        if not committed:
            _unlink(tmp_array, tmp_manifest)
            if not manifest_path.exists():
                _unlink(array_path)
    return open_cache(array_path)


def open_cache(path, *, expect_ids=None):
    """The cache at `path` if it is complete and matches its manifest (and `expect_ids`, when given), else None.
    The images are memory-mapped read-only."""
    array_path, manifest_path = cache_files(path)
    try:
        with open(manifest_path) as fh:
            manifest = json.load(fh)
        if manifest.get("version") != FORMAT_VERSION or manifest.get("dtype") != "uint8":
            return None
        if os.path.getsize(array_path) != manifest["bytes"]:
            return None
        if manifest["shape"][0] == 0:
            images = np.empty(tuple(manifest["shape"]), dtype=np.uint8)
        else:
            images = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ids = np.asarray(manifest["ids"], dtype=np.int64)
    if list(images.shape) != manifest["shape"] or images.dtype != np.uint8 or len(ids) != images.shape[0]:
        return None
    if expect_ids is not None and not np.array_equal(ids, np.asarray(expect_ids, dtype=np.int64)):
        return None
    return TensorCache(path=array_path, ids=ids, images=images)


def save_cache(path, ids, images):
    """Write in-memory images as a cache (the same files and guarantees as build_cache)."""
    array_path, manifest_path = cache_files(path)
    images = np.asarray(images, dtype=np.uint8)
    folder = array_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _unlink(manifest_path)
        tmp = folder / f".{array_path.name}.{os.getpid()}.tmp"
        tmp_manifest = folder / f".{manifest_path.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, images)
                fh.flush()
                os.fsync(fh.fileno())
            with open(tmp_manifest, "w") as fh:
                json.dump({"version": FORMAT_VERSION, "shape": list(images.shape), "dtype": "uint8",
                           "bytes": os.path.getsize(tmp), "ids": np.asarray(ids, dtype=np.int64).tolist()}, fh)
            os.replace(tmp, array_path)
            os.replace(tmp_manifest, manifest_path)
        finally:
            _unlink(tmp, tmp_manifest)
    except OSError as exc:
        _unlink(array_path)
        raise CacheError(f"cannot write the tensor cache in {folder}: {exc.strerror or exc}") from exc


def load_cache(path):
    """(ids, images memory-mapped) of a complete cache; CacheError when there is none at `path` to trust."""
    cache = open_cache(path)
    if cache is None:
        raise CacheError(f"no complete tensor cache at {cache_files(path)[0]}")
    return cache.ids, cache.images
