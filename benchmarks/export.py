"""Benchmark the CSV export: N images in a throwaway dataset of the configured database, exported through Django's
WSGI handler as a client would get them, against the baseline of only reading the same rows
(`values_list(...).iterator()`, no CSV), both measured in the same run. Prints; asserts nothing.

Memory is the process's resident set (RSS) from /proc/self/status: the peak (VmHWM) is reset before each step by
writing 5 to /proc/self/clear_refs, and the growth reported is the peak during the step minus the RSS before it.
Where the peak cannot be reset, a thread samples VmRSS every 2 ms instead. The rows are inserted by a child
process, so that the measuring process starts idle, as a web worker would, without the memory that inserting
300,000 objects leaves with the allocator. Steps run export first, then the baseline, then the export again: memory
freed by one step and kept by the allocator could otherwise hide the next step's growth.

    python -m benchmarks.export --rows 300000
"""
import argparse
import gc
import io
import random
import subprocess
import sys
import threading
import time
import uuid

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from curation.models import Dataset, Image  # noqa: E402
from curation.selectors import dataset_export_rows  # noqa: E402
from curation.tokens import issue_token  # noqa: E402


def _status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class _Peak:
    """Peak RSS growth (MB) of the process during the `with` block."""

    def __enter__(self):
        gc.collect()
        self.reset = _reset_peak()
        self.before = _status_kb("VmRSS")
        self.sampled, self._stop = self.before, threading.Event()
        if not self.reset:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.sampled = max(self.sampled, _status_kb("VmRSS"))

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        if self.reset:
            peak = _status_kb("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
            peak = self.sampled
        self.growth_mb = (peak - self.before) / 1024
        self.method = "VmHWM after clear_refs" if self.reset else "VmRSS sampled every 2 ms"
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description="Measure the CSV export (wall time, peak RSS growth) of N images "
                                                 "against a bare row-reading baseline.")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000, help="rows per bulk_create")
    parser.add_argument("--seed-into", help="(internal) insert the rows into this dataset and exit")
    args = parser.parse_args(argv)
    for name in ("rows", "batch"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1 (got {getattr(args, name)})")
    if args.seed_into:
        dataset = Dataset.objects.get(name=args.seed_into)
        _seed(dataset, dataset.created_by, args.rows, args.batch)
        return
    tag = uuid.uuid4().hex[:8]
    user = get_user_model().objects.create_user(username=f"bench-export-{tag}")
    dataset = Dataset.objects.create(name=f"bench-export-{tag}", format=Dataset.Format.CSV, source="bench_export",
                                     created_by=user)
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmarks.export", "--seed-into", dataset.name,
                        "--rows", str(args.rows), "--batch", str(args.batch)],
                       cwd=settings.BASE_DIR, check=True)
        print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); "
              f"seeded {args.rows:,} images in {time.perf_counter() - t0:.1f} s")
        token = issue_token(user)[1]
        gc.collect()
        idle_mb = _status_kb("VmRSS") / 1024
        print(f"idle process RSS before the measurements: {idle_mb:.0f} MB")

        results = [("export via WSGI (first)", *_export(dataset, token)),
                   ("baseline: values_list().iterator()", *_baseline(dataset)),
                   ("export via WSGI (again)", *_export(dataset, token))]
        print(f"{'step':38s} {'rows':>9s} {'MB out':>7s} {'wall s':>7s} {'rows/s':>9s} {'peak RSS +MB':>12s}")
        for name, rows, size, peak in results:
            print(f"{name:38s} {rows:9,d} {size / 1e6:7.1f} {peak.seconds:7.2f} "
                  f"{rows / peak.seconds:9,.0f} {peak.growth_mb:12.1f}")
        print(f"memory: {results[0][3].method}; wall time includes the query")
    finally:
        with connection.cursor() as cursor:  # a raw delete: the ORM's cascade would load every row first
            cursor.execute(f"DELETE FROM {Image._meta.db_table} WHERE dataset_id = %s", [dataset.pk])
        dataset.delete()
        user.delete()


def _seed(dataset, user, n, batch):
    rng = random.Random(0)
    now = timezone.now()
    statuses = [Image.Status.UNREVIEWED] * 7 + [Image.Status.CONFIRMED, Image.Status.RELABELLED,
                                                Image.Status.EXCLUDED]
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            original = rng.randrange(8)
            status = rng.choice(statuses)
            reviewed = status != Image.Status.UNREVIEWED
            label = (original + 1) % 8 if status == Image.Status.RELABELLED else original
            scored = rng.random() < 0.8
            rows.append(Image(
                dataset=dataset, path=f"{rng.choice(('train', 'val', 'test'))}/{original}/img_{i:07d}.png",
                file=f"datasets/bench/{i}.png", content_hash=f"{i:064x}", width=96, height=96,
                split=rng.choice(("train", "train", "train", "val", "test")), original_label=original,
                label=label, status=status, ambiguity=rng.random() if scored else None,
                suspicion=rng.random() if scored else None, flagged=scored and rng.random() < 0.1,
                reviewed_by=user if reviewed else None, reviewed_at=now if reviewed else None,
            ))
        with transaction.atomic():
            Image.objects.bulk_create(rows)


def _export(dataset, token):
    host = next((h for h in settings.ALLOWED_HOSTS if h and "*" not in h and not h.startswith(".")),
                "localhost")
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": f"/api/datasets/{dataset.name}/export.csv", "QUERY_STRING": "",
        "SERVER_NAME": host, "SERVER_PORT": "80", "HTTP_HOST": host, "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": f"Token {token}", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    status = []
    size = newlines = 0
    with _Peak() as peak:
        body = WSGIHandler()(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            for chunk in body:
                size += len(chunk)
                newlines += chunk.count(b"\n")
        finally:
            body.close()
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"export answered {status}")
    return newlines - 1, size, peak


def _baseline(dataset):
    rows = 0
    with _Peak() as peak:
        for _ in dataset_export_rows(dataset=dataset):
            rows += 1
    return rows, 0, peak


if __name__ == "__main__":
    main()
