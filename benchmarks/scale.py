"""Scale: N synthetic faces at 64 px taken from files to scores, with the wall time and the peak growth of the
process's anonymous memory (RssAnon: heap and arrays, not the page cache that a memory-mapped file is read through)
of each stage, each beside its floor measured in the same run:

    stage                          floor
    make faces (worker processes)  -
    import (the import job)        read + decode + hash every file, nothing stored
    tensor cache (load_arrays)     decode every file with the same workers, keeping nothing
    out-of-fold scoring            read the same rows of the cache in the same batches, no model

The out-of-fold scoring pass is --folds small_cnn models: each fits one epoch on at most --fit-images rows of its
training part (rows of the memory-mapped cache, streamed), then scores every row it did not see, so the pass
reads the whole cache. The goal: no stage's RssAnon grows by as much as a quarter of the cache's size (the cache
is written and read through a memory map, never copied whole into the process).

Runs in a data directory of its own: FER_DATA_DIR if set, else a temporary one removed at the end.

    python -m benchmarks.scale --n 30000
    python -m benchmarks.scale            # 300,000 faces, as AffectNet's train split
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_OWN_DATA_DIR = None
if __name__ == "__main__" and "FER_DATA_DIR" not in os.environ:  # run, not imported (the layer test imports it)
    _OWN_DATA_DIR = tempfile.mkdtemp(prefix="bench_scale_")
    os.environ["FER_DATA_DIR"] = _OWN_DATA_DIR

from benchmarks._django import setup  # noqa: E402
from benchmarks._memory import rss_anon  # noqa: E402

setup()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import override_settings  # noqa: E402

from curation.classifier.arrays import load_arrays  # noqa: E402
from curation.classifier.selection import Item  # noqa: E402
from curation.importers.validate import read_image  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Dataset, Image, Job  # noqa: E402
from training.cache import CHUNK, decode_one, decode_workers  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.engine import fit, predict_proba  # noqa: E402
from training.malloc import release_heap  # noqa: E402
from training.synthetic_faces import make_synthetic_faces  # noqa: E402

MB = 2**20
SMALL_HELD = 1024  # rows per fold the model-only measure scores


class Measure:
    """Wall time and peak RssAnon growth (sampled every 5 ms by a thread) of the code inside `with`."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        release_heap()  # each stage starts from what is live
        self.start_rss = self.peak = rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_anon())

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())
        self.growth = self.peak - self.start_rss
        # A line as each stage ends: a long run shows where it is, and one that fails late keeps what it measured.
        print(f"[{time.strftime('%H:%M:%S')}] {self.name}: {self.seconds:.1f} s, RssAnon +{self.growth / MB:.1f} MiB",
              file=sys.stderr, flush=True)
        return False


def decode_only(paths, size, workers):
    """The cache's floor: decode every file with the same threads and chunks, keeping nothing."""
    def chunk(part):
        for p in part:
            decode_one(p, size)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(chunk, [paths[a : a + CHUNK] for a in range(0, len(paths), CHUNK)]))


def oof_plan(n, folds, fit_images, seed):
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(n) % folds
    plan = []
    for k in range(folds):
        train = np.flatnonzero(fold_of != k)
        fit_rows = np.sort(rng.choice(train, min(fit_images, len(train)), replace=False))
        plan.append((fit_rows, np.flatnonzero(fold_of == k)))
    return plan


def read_only(images, plan, batch_size):
    """Scoring's floor: read the rows the pass reads, in batches, touching every byte, no model."""
    total = 0
    for fit_rows, held in plan:
        for rows in (fit_rows, held):
            for a in range(0, len(rows), batch_size):
                total += int(np.take(images, rows[a : a + batch_size], axis=0).sum(dtype=np.uint64))
    return total


def oof_scores(images, labels, plan, cfg, val_rows):
    x_val, y_val = np.asarray(images[val_rows]), labels[val_rows]
    probs = np.zeros((len(images), cfg.num_classes), dtype=np.float32)
    placements = set()
    for fit_rows, held in plan:
        result = fit(cfg, images, labels, x_val, y_val, device="cpu", train_index=fit_rows)
        placements.add(str(result.placement))
        probs[held] = predict_proba(result.model, images, index=held, batch_size=2 * cfg.batch_size, device="cpu")
    return probs, placements


def main(argv=None):
    parser = argparse.ArgumentParser(description="Wall time and peak RssAnon growth per stage, from synthetic "
                                                 "files to out-of-fold scores, against same-run floors.")
    parser.add_argument("--n", type=int, default=300_000, help="synthetic faces (default 300,000)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decode threads and face-making processes "
                                                                  "(default: FER_DECODE_WORKERS, else the CPUs)")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--fit-images", type=int, default=2000, help="rows each fold's model fits on (one epoch)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    if args.n < 2 * args.folds or args.folds < 2:
        raise SystemExit(f"need --folds >= 2 and --n >= 2 x folds (got n={args.n}, folds={args.folds})")
    workers = decode_workers(args.workers)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    work = Path(tempfile.mkdtemp(prefix="scale_faces_", dir=settings.DATA_DIR))
    name = f"bench-scale-{args.n}"
    rows = []
    try:
        call_command("migrate", verbosity=0)
        with Measure("make faces") as make:
            make_synthetic_faces(work / "faces", n=args.n, size=args.size, noise=0.2, seed=1, workers=workers,
                                 chunk=1000)
        rows.append((make, None))
        files = sorted((work / "faces" / "images").glob("*.png"))

        with Measure("read + decode + hash") as floor:
            for p in files:
                read_image(p, max_bytes=settings.IMPORT_MAX_FILE_BYTES, max_pixels=settings.IMPORT_MAX_PIXELS)
        Dataset.objects.filter(name=name).delete()
        params = {"path": str(work / "faces" / "labels.csv"), "format": "csv", "name": name}
        with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, work]):
            job = job_enqueue(kind="import_dataset", send=False, params=params)
            with Measure("import job") as imp:
                job_run(job_id=job.pk, worker=worker_label("bench:"))
        job.refresh_from_db()
        if job.status != Job.Status.SUCCEEDED:
            raise SystemExit(f"import job {job.pk} {job.status}: {job.message}")
        rows.append((imp, floor))

        values = (Image.objects.filter(dataset__name=name).order_by("id")
                  .values_list("id", "file", "content_hash", "label", "path"))
        items = [Item("image", i, f, h, label, p) for i, f, h, label, p in values]
        media = [Path(settings.MEDIA_ROOT) / item.file for item in items]
        with Measure("decode only") as floor:
            decode_only(media, args.size, workers)
        with Measure("tensor cache") as cache_stage:
            images, labels = load_arrays(items, args.size)
        rows.append((cache_stage, floor))
        cache_bytes = images.nbytes
        del images
        release_heap()  # each stage starts from what is live
        # Read back as a job would: a fresh memory map (the build's pages are not this process's any more).
        images, labels = load_arrays(items, args.size)

        cfg = TrainConfig(arch="small_cnn", size=args.size, epochs=1, batch_size=args.batch_size,
                          early_stopping_patience=0, num_threads=len(os.sched_getaffinity(0)))
        plan = oof_plan(len(images), args.folds, args.fit_images, seed=0)
        val_rows = plan[0][1][:256]
        with Measure("read only") as floor:
            read_only(images, plan, 2 * args.batch_size)
        with Measure(f"out-of-fold scoring ({args.folds} x small_cnn)") as score:
            probs, placements = oof_scores(images, labels, plan, cfg, val_rows)
        rows.append((score, floor))
        # The models' own working set (activations, gradients, optimiser state, torch's buffers), which does not
        # grow with N: the same fits on the same rows copied into RAM first, scoring only SMALL_HELD rows.
        small_rows = np.concatenate([r for fit_rows, held in plan for r in (fit_rows, held[:SMALL_HELD])])
        small, small_labels = np.array(images[small_rows]), labels[small_rows]
        small_plan, at = [], 0
        for fit_rows, held in plan:
            k, h = len(fit_rows), min(len(held), SMALL_HELD)
            small_plan.append((np.arange(at, at + k), np.arange(at + k, at + k + h)))
            at += k + h
        with Measure("model only") as model_only:
            oof_scores(small, small_labels, small_plan, cfg, val_rows=np.arange(min(256, len(small))))
        del small
        accuracy = float((probs.argmax(1) == labels).mean())

        print(f"faces: {args.n} at {args.size} px   cache: {cache_bytes / MB:.0f} MiB   goal: growth < "
              f"{cache_bytes / 4 / MB:.0f} MiB (a quarter of the cache)   decode workers: {workers} threads   "
              f"CPUs: {len(os.sched_getaffinity(0))}")
        print(f"scoring placement: {'; '.join(sorted(placements))}")
        print(f"out-of-fold accuracy against the given labels: {accuracy:.3f}")
        print()
        print(f"{'stage':<38} {'wall s':>8} {'floor s':>8} {'x floor':>7}  {'RssAnon +MiB':>12} {'floor +MiB':>10} "
              f"{'/ cache':>7}  goal")
        for stage, base in rows:
            share = stage.growth / cache_bytes
            line = (f"{stage.name:<38} {stage.seconds:8.1f} "
                    + (f"{base.seconds:8.1f} {stage.seconds / base.seconds:7.2f}" if base else f"{'-':>8} {'-':>7}")
                    + f"  {stage.growth / MB:12.1f} "
                    + (f"{base.growth / MB:10.1f}" if base else f"{'-':>10}")
                    + f" {share:7.3f}  {'met' if share < 0.25 else 'MISSED'}")
            print(line)
            if base:
                print(f"  floor: {base.name}")
        net = score.growth - model_only.growth
        print(f"  the models' own working set (the same fits from RAM, {SMALL_HELD} rows scored per fold): "
              f"+{model_only.growth / MB:.1f} MiB in {model_only.seconds:.1f} s; scoring net of it: "
              f"+{net / MB:.1f} MiB = {net / cache_bytes:.3f} of the cache")
        Dataset.objects.filter(name=name).delete()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if _OWN_DATA_DIR:
            shutil.rmtree(_OWN_DATA_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
