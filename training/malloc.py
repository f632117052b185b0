"""A fixed mmap threshold for glibc's malloc, so the host memory of a long training or scoring pass stays flat.

glibc serves a block of at least M_MMAP_THRESHOLD bytes (128 KiB at start) with its own mmap and gives it back
when freed. But each time such a block is freed, glibc raises the threshold to that block's size (up to 32 MiB)
and its heap-trim threshold to twice that, after which batch-sized buffers come from a heap that is rarely
trimmed. Freed between small blocks that stay alive, they fragment it, and it is never returned: an out-of-fold
scoring pass of small_cnn over 300,000 memory-mapped 64 px images grew the process's anonymous memory by
8.4 GiB, 2.4 times the cache it read (benchmarks.scale, docs/benchmarks.md). Setting the threshold explicitly
turns the adjustment off, the trim threshold included.

Where to fix it is a trade between speed and memory, measured on the 2-core CPU machine (docs/benchmarks.md):
at 128 KiB every activation of a CPU training step is a fresh mapping, and small_cnn trained 18 % slower than
under glibc's adjusting threshold; at 16 MiB (the default) within 1 % of it (benchmarks.malloc_threshold), and
the 30,000-image scoring pass grows no more than its models' working set, as at 128 KiB.

release_heap() gives what a stage freed back to the system between a job's stages (find_duplicates) or a
benchmark's (benchmarks.scale), so that the next stage's peak does not sit on top of it.
"""
import ctypes
import ctypes.util
import functools
import gc
import os

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
DEFAULT_THRESHOLD = 16 << 20  # below glibc's 32 MiB ceiling: a CPU step's larger activations still get mappings


@functools.cache
def _libc_function(name):
    """glibc's function `name`, or None where the C library lacks it (macOS, musl: their allocators differ)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def release_heap():
    """Give the heap a stage freed back to the system (glibc keeps freed small blocks mapped), so that the next
    stage's peak does not sit on top of it. Elsewhere than glibc, only the garbage collection."""
    gc.collect()
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


@functools.cache
def fix_mmap_threshold(nbytes=None):
    """Fix glibc's mmap threshold at `nbytes` (else FER_MALLOC_MMAP_THRESHOLD, else 16 MiB) for this process.
    True if set; False where the C library is not glibc (nothing to do) or FER_MALLOC_MMAP_THRESHOLD is 0 (off)."""
    if nbytes is None:
        raw = os.environ.get("FER_MALLOC_MMAP_THRESHOLD", str(DEFAULT_THRESHOLD))
        try:
            nbytes = int(raw)
        except ValueError:
            raise ValueError(f"FER_MALLOC_MMAP_THRESHOLD must be a number of bytes (0: off); got {raw!r}") from None
    if nbytes <= 0:
        return False
    mallopt = _libc_function("mallopt")
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, int(nbytes)))
