"""What glibc's mmap threshold (training/malloc.py, FER_MALLOC_MMAP_THRESHOLD) costs a CPU training step.

Each threshold trains the same small_cnn on the same random images with training.engine.fit, in a process of its
own (the threshold is fixed per process), and prints images per second beside glibc's adjusting threshold
(`0`, the baseline) measured in the same run, and how far the process's anonymous memory grew:

    python -m benchmarks.malloc_threshold                       # 0 (glibc's), 128 KiB, 16 MiB
    python -m benchmarks.malloc_threshold --thresholds 0 4194304 --images 3000 --repeat 2

Memory over a long pass is benchmarks.scale's measurement; this one is the speed side of the trade.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
import numpy as np
from benchmarks._memory import rss_anon
from training.config import TrainConfig
from training.engine import fit

n, size, epochs, threads = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
y = rng.integers(0, 8, n)
cfg = TrainConfig(arch="small_cnn", size=size, batch_size=64, lr=0.002, epochs=epochs, augment=True,
                  num_threads=threads, seed=0)
before = rss_anon()
t0 = time.monotonic()
fit(cfg, x, y, x[:64], y[:64])
seconds = time.monotonic() - t0
print(json.dumps({"seconds": seconds, "images_per_s": n * epochs / seconds,
                  "rss_anon_growth_mib": (rss_anon() - before) / 2**20}))
"""


def run_one(threshold, args):
    env = dict(os.environ, FER_MALLOC_MMAP_THRESHOLD=str(threshold))
    done = subprocess.run([sys.executable, "-c", CHILD, str(args.images), str(args.size), str(args.epochs),
                           str(args.threads)], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"threshold {threshold}: the training process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def label(threshold):
    if threshold == 0:
        return "glibc's adjusting threshold (0)"
    return f"{threshold / 1024:,.0f} KiB" if threshold < 1 << 20 else f"{threshold / (1 << 20):,.0f} MiB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=int, nargs="+", default=[0, 128 * 1024, 16 << 20],
                        help="bytes; 0 is glibc's adjusting threshold, the baseline (measured first)")
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each threshold, interleaved; the best counts")
    args = parser.parse_args(argv)
    thresholds = [0] + [t for t in args.thresholds if t != 0]
    if any(t < 0 for t in thresholds):
        parser.error("--thresholds: a threshold is a number of bytes >= 0")
    best = {}
    for _ in range(args.repeat):  # interleaved, so that the machine's load falls on every threshold alike
        for t in thresholds:
            got = run_one(t, args)
            if t not in best or got["images_per_s"] > best[t]["images_per_s"]:
                best[t] = got
    print(f"small_cnn, {args.images} random {args.size} px images, {args.epochs} epochs, {args.threads} thread(s), "
          f"best of {args.repeat}")
    print(f"{'threshold':34} {'images/s':>9} {'x glibc':>8} {'RssAnon +MiB':>13}")
    base = best[0]["images_per_s"]
    for t in thresholds:
        r = best[t]
        print(f"{label(t):34} {r['images_per_s']:9.1f} {r['images_per_s'] / base:8.3f} "
              f"{r['rss_anon_growth_mib']:13.1f}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
