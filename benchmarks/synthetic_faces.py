"""Benchmark the synthetic face generator on one CPU core: faces/second rendered, and rendered + written as PNG,
against the floor of only encoding and writing PNGs (a constant image, and already rendered faces; with the
generator's own PNG writer and, for comparison, Pillow's), all measured in the same run. Each figure is the best
of --repeat runs, as timeit reports, because a shared disk or CPU only ever makes a run slower. Prints figures;
asserts nothing. Everything runs in this one single-threaded process, so on one core.

    python -m benchmarks.synthetic_faces --n 2000 --dir /dev/shm
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training.labels import CLASSES
from training.synthetic_faces import (
    DEFAULT_DIFFICULTY,
    PNG_COMPRESS_LEVEL,
    face,
    knobs,
    make_synthetic_faces,
    png_bytes,
)


def _write(folder, images, pillow=False):
    folder.mkdir()
    for i, pixels in enumerate(images):
        path = folder / f"{i:05d}.png"
        if pillow:
            Image.fromarray(pixels).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        else:
            path.write_bytes(png_bytes(pixels))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Measure synthetic-face generation speed (faces/s, one core) "
                                                 "against the PNG encode+write floor.")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: the system's temporary folder; "
                                                    "/dev/shm takes the disk out of the figures)")
    options = vars(parser.parse_args(argv))
    for name in ("n", "size", "repeat"):
        if options[name] < 1:
            raise SystemExit(f"--{name} must be at least 1 (got {options[name]})")
    n, size, difficulty = options["n"], options["size"], options["difficulty"]
    k = knobs(difficulty)
    labels = [CLASSES[i % len(CLASSES)] for i in range(n)]
    work = Path(tempfile.mkdtemp(prefix="bench_faces_", dir=options["dir"]))
    runs = iter(range(10**6))  # a fresh folder for every write, so no run overwrites files

    def best(step):
        times = []
        for _ in range(options["repeat"]):
            folder = work / str(next(runs))
            t0 = time.perf_counter()
            step(folder)
            times.append(time.perf_counter() - t0)
        return min(times)

    try:
        face(0, 0, "happy", size, k)  # warm the caches (noise field, gradients)
        faces = [face(1, i, label, size, k)[0] for i, label in enumerate(labels)]
        constant = [np.full((size, size, 3), 128, np.uint8)] * n
        figures = {
            "render only": best(lambda folder: [face(1, i, c, size, k) for i, c in enumerate(labels)]),
            "render + PNG write": best(lambda folder: _write(folder, (face(1, i, c, size, k)[0]
                                                                     for i, c in enumerate(labels)))),
            "make_synthetic_faces (+ CSVs)": best(lambda folder: make_synthetic_faces(
                folder, n=n, size=size, seed=1, difficulty=difficulty)),
            "floor: PNG encode+write, constant": best(lambda folder: _write(folder, constant)),
            "floor: PNG encode+write, faces": best(lambda folder: _write(folder, faces)),
            "  the same with Pillow's PNG encoder": best(lambda folder: _write(folder, faces, pillow=True)),
        }
        _write(work / "sizes", faces)
        kilobytes = sum(p.stat().st_size for p in (work / "sizes").iterdir()) / 1e3 / n
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{n} faces, {size} px, difficulty {difficulty}, one core, best of {options['repeat']}, "
          f"zlib level {PNG_COMPRESS_LEVEL}, {kilobytes:.1f} KB a face, written under {work.parent}")
    for what, seconds in figures.items():
        unit = "images/s" if what.startswith(("floor", " ")) else "faces/s"
        print(f"{what + ':':<38}{n / seconds:8.0f} {unit}  ({1e3 * seconds / n:.2f} ms each)")


if __name__ == "__main__":
    main()
