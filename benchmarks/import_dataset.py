"""Benchmark the importer: images/second of a real import job against the ceiling of only reading, decoding and
hashing the same files (no database, no copy), both measured in the same run on the configured database."""
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from curation.importers.validate import read_image
from curation.jobs.runner import job_run, worker_label
from curation.jobs.services import job_enqueue
from curation.models import Dataset
from training.synthetic_faces import make_synthetic_faces


class Command(BaseCommand):
    help = "Measure import throughput (images/s) against the decode+hash ceiling."

    def add_arguments(self, parser):
        parser.add_argument("--per-class", type=int, default=500, help="synthetic faces per class (8 classes)")
        parser.add_argument("--name", default="bench-import")

    def handle(self, *args, **options):
        work = Path(tempfile.mkdtemp(prefix="bench_import_"))
        try:
            make_synthetic_faces(work / "faces", n=8 * options["per_class"], size=64, noise=0.2, seed=1)
            source = work / "faces" / "labels.csv"
            files = sorted((work / "faces" / "images").glob("*.png"))
            megabytes = sum(p.stat().st_size for p in files) / 1e6

            t0 = time.perf_counter()
            for p in files:
                read_image(p, max_bytes=settings.IMPORT_MAX_FILE_BYTES, max_pixels=settings.IMPORT_MAX_PIXELS)
            ceiling = time.perf_counter() - t0

            Dataset.objects.filter(name=options["name"]).delete()
            job = job_enqueue(kind="import_dataset", send=False,
                              params={"path": str(source), "format": "csv", "name": options["name"]})
            t0 = time.perf_counter()
            job_run(job_id=job.pk, worker=worker_label("bench:"))
            elapsed = time.perf_counter() - t0
            job.refresh_from_db()

            t0 = time.perf_counter()
            job2 = job_enqueue(kind="import_dataset", send=False,
                               params={"path": str(source), "format": "csv", "name": options["name"]})
            job_run(job_id=job2.pk, worker=worker_label("bench:"))
            reimport = time.perf_counter() - t0
            job2.refresh_from_db()

            n = len(files)
            self.stdout.write(f"database: {connection.vendor}   files: {n} ({megabytes:.1f} MB, 64x64 PNG)")
            self.stdout.write(f"ceiling (read+decode+hash only): {n / ceiling:8.0f} images/s  ({ceiling:.2f} s)")
            self.stdout.write(f"import job (status {job.status}): {n / elapsed:8.0f} images/s  ({elapsed:.2f} s, "
                              f"{100 * ceiling / elapsed:.0f}% of ceiling), added {job.result['added']}")
            self.stdout.write(f"re-import (nothing new):       {n / reimport:8.0f} images/s  ({reimport:.2f} s), "
                              f"added {job2.result['added']}, already present {job2.result['already_present']}")
            Dataset.objects.filter(name=options["name"]).delete()
        finally:
            shutil.rmtree(work, ignore_errors=True)
