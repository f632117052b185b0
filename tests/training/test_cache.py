"""The tensor cache on disk: parallel decode into a memory-mapped .npy, trusted only when complete, and a clear
error (with nothing left behind to trust) when its directory cannot be written."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.cache import CacheError, build_cache, cache_files, decode_images, load_cache, open_cache

ROOT = Path(__file__).resolve().parents[2]


def write_faces(folder, n, size=24, seed=0):
    """n PNG files of random colours (some not square and not `size`, so the resize path runs)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = (size, size) if i % 3 else (size + 7, size + 3)
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def serial(paths, size):
    return decode_images(paths, size, workers=1)


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_parallel_decode_gives_the_serial_decode_byte_for_byte(tmp_path, backend, monkeypatch):
    monkeypatch.setattr("training.cache.CHUNK", 7)  # several chunks, a ragged last one
    paths = write_faces(tmp_path / "img", 30)
    seen = []
    parallel = decode_images(paths, 16, workers=2, backend=backend, on_progress=seen.append)
    np.testing.assert_array_equal(parallel, serial(paths, 16))
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_a_built_cache_is_memory_mapped_and_reopens_with_its_ids(tmp_path):
    paths = write_faces(tmp_path / "img", 20)
    cache = build_cache(tmp_path / "cache" / "k", list(range(100, 120)), paths, 16, workers=2)
    assert isinstance(cache.images, np.memmap) and not cache.images.flags.writeable
    np.testing.assert_array_equal(cache.images, serial(paths, 16))
    ids, images = load_cache(tmp_path / "cache" / "k.npy")
    assert ids.tolist() == list(range(100, 120)) and isinstance(images, np.memmap)
    assert open_cache(tmp_path / "cache" / "k", expect_ids=range(100, 120)) is not None
    assert open_cache(tmp_path / "cache" / "k", expect_ids=range(20)) is None  # other images: not this cache
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k.json", "k.npy"]  # no temporaries left


def test_a_cache_without_a_matching_manifest_is_never_trusted(tmp_path):
    paths = write_faces(tmp_path / "img", 6)
    array, manifest = cache_files(tmp_path / "c" / "k")
    build_cache(array, range(6), paths, 16, workers=1)
    saved = manifest.read_text()
    manifest.unlink()  # as after a crash between the array's rename and the manifest's
    assert open_cache(array) is None
    with pytest.raises(CacheError, match="no complete tensor cache at .*k.npy"):
        load_cache(array)
    manifest.write_text(saved)
    with open(array, "r+b") as fh:  # a truncated array under a manifest that promised more
        fh.truncate(array.stat().st_size - 100)
    assert open_cache(array) is None
    manifest.write_text(json.dumps({**json.loads(saved), "version": 0}))
    assert open_cache(array) is None
    rebuilt = build_cache(array, range(6), paths, 16, workers=1)  # a rebuild replaces what was not trusted
    np.testing.assert_array_equal(rebuilt.images, serial(paths, 16))


def test_an_image_that_fails_to_decode_leaves_nothing_behind(tmp_path):
    paths = write_faces(tmp_path / "img", 12)
    paths[9].write_bytes(b"not an image")
    folder = tmp_path / "cache"
    with pytest.raises(Exception, match="9.png"):
        build_cache(folder / "k", range(12), paths, 16, workers=2)
    assert list(folder.iterdir()) == []


def test_a_full_disk_gives_an_error_naming_the_directory_and_leaves_nothing_to_trust(tmp_path):
    """A real write failure: the file size limit (RLIMIT_FSIZE) makes the space reservation fail, as a full disk
    makes it fail with ENOSPC. An older complete cache of the same key is not trusted afterwards either (its
    manifest went first)."""
    paths = write_faces(tmp_path / "img", 40)
    folder = tmp_path / "cache"
    build_cache(folder / "k", range(40), paths, 16, workers=1)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(CacheError, match=f"cannot write the tensor cache in {folder}: File too large"):
            build_cache(folder / "k", range(40), paths, 32, workers=1)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert open_cache(folder / "k") is None
    assert not any(p.name.startswith(".") for p in folder.iterdir())  # no temporaries left


READ_ONLY_CHILD = """
import sys
from training.cache import CacheError, build_cache, open_cache
folder, paths = sys.argv[1], sys.argv[2:]
try:
    build_cache(folder + "/k", range(len(paths)), paths, 16, workers=2)
except CacheError as exc:
    print("CacheError:", exc)
print("trusted:", open_cache(folder + "/k") is not None)
"""


def test_a_read_only_cache_directory_gives_an_error_naming_it(tmp_path):
    """The build runs in a child process without write permission on the directory. Root ignores mode bits, so
    as root the child runs without the capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    paths = write_faces(tmp_path / "img", 5)
    folder = tmp_path / "cache"
    folder.mkdir()
    os.chmod(folder, 0o555)
    command = [sys.executable, "-c", READ_ONLY_CHILD, str(folder), *map(str, paths)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a read-only directory cannot be made for root")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--", *command]
    try:
        child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert child.returncode == 0, child.stderr
        assert f"CacheError: cannot write the tensor cache in {folder}: Permission denied" in child.stdout
        assert "trusted: False" in child.stdout
        assert list(folder.iterdir()) == []
    finally:
        os.chmod(folder, 0o755)


def test_a_cache_directory_that_is_a_file_gives_an_error_naming_it(tmp_path):
    (tmp_path / "cache").write_text("a file where the cache directory should be")
    paths = write_faces(tmp_path / "img", 2)
    with pytest.raises(CacheError, match=f"cannot create the tensor cache directory {tmp_path / 'cache'}"):
        build_cache(tmp_path / "cache" / "k", range(2), paths, 16)
