"""Benchmark the importer: images/second of a real import job against the ceiling of only reading, decoding and
hashing the same files (no database, no copy), both measured in the same run on the configured database.

    python -m benchmarks.import_dataset --per-class 500
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402

from curation.importers.validate import read_image  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Dataset, Job  # noqa: E402
from training.synthetic_faces import make_synthetic_faces  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description="Measure import throughput (images/s) against the decode+hash "
                                                 "ceiling.")
    parser.add_argument("--per-class", type=int, default=500, help="synthetic faces per class (8 classes)")
    parser.add_argument("--name", default="bench-import")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        raise SystemExit(f"--per-class must be at least 1 (got {args.per_class})")
    work = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        make_synthetic_faces(work / "faces", n=8 * args.per_class, size=64, noise=0.2, seed=1)
        source = work / "faces" / "labels.csv"
        files = sorted((work / "faces" / "images").glob("*.png"))
        megabytes = sum(p.stat().st_size for p in files) / 1e6

        t0 = time.perf_counter()
        for p in files:
            read_image(p, max_bytes=settings.IMPORT_MAX_FILE_BYTES, max_pixels=settings.IMPORT_MAX_PIXELS)
        ceiling = time.perf_counter() - t0

        Dataset.objects.filter(name=args.name).delete()
        params = {"path": str(source), "format": "csv", "name": args.name}
        # The jobs run in this process: its faces folder is an import root for them, next to the configured ones.
        with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, work]):
            job = job_enqueue(kind="import_dataset", send=False, params=params)
            t0 = time.perf_counter()
            job_run(job_id=job.pk, worker=worker_label("bench:"))
            elapsed = time.perf_counter() - t0
            job.refresh_from_db()
            _check(job)

            t0 = time.perf_counter()
            job2 = job_enqueue(kind="import_dataset", send=False, params=params)
            job_run(job_id=job2.pk, worker=worker_label("bench:"))
            reimport = time.perf_counter() - t0
            job2.refresh_from_db()
            _check(job2)

        n = len(files)
        print(f"database: {connection.vendor}   files: {n} ({megabytes:.1f} MB, 64x64 PNG)")
        print(f"ceiling (read+decode+hash only): {n / ceiling:8.0f} images/s  ({ceiling:.2f} s)")
        print(f"import job (status {job.status}): {n / elapsed:8.0f} images/s  ({elapsed:.2f} s, "
              f"{100 * ceiling / elapsed:.0f}% of ceiling), added {job.result['added']}")
        print(f"re-import (nothing new):       {n / reimport:8.0f} images/s  ({reimport:.2f} s), "
              f"added {job2.result['added']}, already present {job2.result['already_present']}")
        Dataset.objects.filter(name=args.name).delete()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(job):
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"import job {job.pk} {job.status}: {job.message}")


if __name__ == "__main__":
    main()
