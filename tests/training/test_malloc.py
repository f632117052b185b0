"""The fixed mmap threshold (training/malloc.py): after a large block is freed, glibc would serve the next
batch-sized buffer from its heap, where freed buffers fragment and the process grows with the batches it reads
(8.4 GiB over a 300,000-image scoring pass). With the threshold fixed, such a buffer still gets its own mapping."""
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from training.malloc import fix_mmap_threshold
    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()

    def in_heap(a):
        address = a.__array_interface__["data"][0]
        for line in open("/proc/self/maps"):
            if line.rstrip().endswith("[heap]"):
                low, high = (int(x, 16) for x in line.split()[0].split("-"))
                if low <= address < high:
                    return True
        return False

    big = np.ones(24 << 20, np.uint8)  # a large block, freed: glibc raises its threshold to its size
    del big
    batch = np.ones(20 << 20, np.uint8)  # the next buffer, above the fixed threshold (16 MiB) and below that
    print("heap" if in_heap(batch) else "mmap")
""")


def where_a_batch_goes(mode):
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_after_a_large_free_a_batch_buffer_still_gets_its_own_mapping():
    from training.malloc import DEFAULT_THRESHOLD

    assert DEFAULT_THRESHOLD < 20 << 20  # the script's buffer is above the fixed threshold
    if where_a_batch_goes("default") != "heap":
        pytest.skip("this C library does not move batch-sized buffers into the heap (not glibc's dynamic threshold)")
    assert where_a_batch_goes("fixed") == "mmap"


def test_the_threshold_setting_is_checked(monkeypatch):
    from training.malloc import fix_mmap_threshold

    monkeypatch.setenv("FER_MALLOC_MMAP_THRESHOLD", "lots")
    fix_mmap_threshold.cache_clear()
    try:
        with pytest.raises(ValueError, match="FER_MALLOC_MMAP_THRESHOLD must be a number of bytes"):
            fix_mmap_threshold()
        monkeypatch.setenv("FER_MALLOC_MMAP_THRESHOLD", "0")
        assert fix_mmap_threshold() is False
    finally:
        fix_mmap_threshold.cache_clear()
        monkeypatch.delenv("FER_MALLOC_MMAP_THRESHOLD")
        fix_mmap_threshold()
