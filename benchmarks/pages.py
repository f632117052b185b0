"""Benchmark the two pages whose cost grows with the data: the run comparison (it reads and diffs both runs' label
snapshots on every request) and the jobs page (it counts each listed job's chunk jobs), each against its baseline
measured in the same run. Prints; asserts nothing. Works on the configured database with throwaway rows (a dataset,
two runs and their snapshot files, a user, jobs), deleted at the end.

- comparison: two runs whose snapshots have --rows train rows (the second drops 5 %, relabels 5 % and adds 10 %
  generated images), with the snapshot diff computed (its cache entry deleted first) and cached; baseline: only
  reading both CSV files with csv.reader.
- jobs page: --parents finished jobs, each with --chunks chunk jobs whose params are those chunked scoring writes
  (Job.parent, params {"gan", "direction", "epoch", "ids": [first, last]}); baseline: the same page query with no counts.
- dataset map: --map-points train images with a stored map (the file map_dataset writes: their ids and 2-D
  coordinates); GET /api/datasets/<name>/map/ (the compact binary: the coordinates with each image's current label,
  suggestion, suspicion and status from the database, 12 bytes a point) against the baseline of reading the
  coordinates bare (np.load of the map file), and the PCA projection the job makes of that many 512-dimensional
  float16 embeddings.
Each figure is the best of --repeat.

    python -m benchmarks.pages --rows 287000 --parents 200 --chunks 50 --map-points 100000
"""
import argparse
import csv
import json
import random
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.test import Client  # noqa: E402

from curation.maps import store  # noqa: E402
from curation.maps.project import pca_2d  # noqa: E402
from curation.models import Dataset, Image, Job, Run  # noqa: E402
from curation.roles import CURATORS_GROUP  # noqa: E402
from curation.web.selectors.jobs import JOBS_PER_PAGE, job_children_counts, jobs_page  # noqa: E402
from curation.web.selectors.runs import runs_compare, snapshot_diff_cache_key  # noqa: E402
from training.labels import CLASSES  # noqa: E402


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _write_snapshot(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["split", "source", "id", "path", "label"])
        for source, i, label in rows:
            w.writerow(["train", source, i, f"images/{i:07d}.png", label])


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time the run comparison and the jobs page against their baselines "
                                                 "(prints figures, asserts nothing).")
    parser.add_argument("--rows", type=int, default=287_000, help="train rows per snapshot (AffectNet: ~287k)")
    parser.add_argument("--parents", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=50, help="chunk jobs per parent")
    parser.add_argument("--map-points", type=int, default=100_000, help="train images on the dataset map")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for name in ("rows", "parents", "chunks", "map_points", "repeat"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(args, name)})")
    tag = f"bench-pages-{uuid.uuid4().hex[:8]}"
    user = get_user_model().objects.create_user(tag, password=uuid.uuid4().hex)
    user.groups.add(Group.objects.get_or_create(name=CURATORS_GROUP)[0])
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    dataset = Dataset.objects.create(name=tag, format=Dataset.Format.CSV, source="/bench")
    job_ids, folders = [], []
    try:
        _compare(dataset, client, args.rows, args.repeat, folders)
        _jobs(client, tag, args.parents, args.chunks, args.repeat, job_ids)
        _map(dataset, client, args.map_points, args.repeat)
    finally:
        Job.objects.filter(pk__in=job_ids).delete()
        store.map_path(dataset).unlink(missing_ok=True)
        dataset.delete()
        user.delete()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _compare(dataset, client, n, repeat, folders):
    rng = random.Random(0)
    base_rows = [("image", i, CLASSES[rng.randrange(8)]) for i in range(n)]
    other = []
    for source, i, label in base_rows:
        r = rng.random()
        if r < 0.05:
            continue
        other.append((source, i, CLASSES[(CLASSES.index(label) + 1) % 8] if r < 0.10 else label))
    other += [("generated", i, CLASSES[i % 8]) for i in range(n // 10)]
    metrics = {"accuracy": 0.5, "macro_f1": 0.45, "precision": [0.5] * 8, "recall": [0.5] * 8,
               "support": [10] * 8, "confusion": [[1] * 8 for _ in range(8)]}
    runs = []
    for k, snapshot in enumerate((base_rows, other)):
        run = Run.objects.create(dataset=dataset, arch="small_cnn", status=Run.Status.SUCCEEDED,
                                 test_metrics=metrics, test_split_hash="h", snapshot_hash=f"{dataset.name}-{k}",
                                 history=[{"epoch": e, "val_acc": 0.5, "val_loss": 1.0, "train_acc": 0.5,
                                           "train_loss": 1.0} for e in range(1, 31)])
        rel = f"runs/{run.pk}/snapshot.csv"
        folders.append(Path(settings.MEDIA_ROOT) / "runs" / str(run.pk))
        _write_snapshot(Path(settings.MEDIA_ROOT) / rel, snapshot)
        Run.objects.filter(pk=run.pk).update(snapshot_file=rel)
        runs.append(run.pk)
    files = [Path(settings.MEDIA_ROOT) / f"runs/{pk}/snapshot.csv" for pk in runs]

    def read_only():
        for path in files:
            with open(path, newline="") as f:
                for _ in csv.reader(f):
                    pass

    def page():
        response = client.get(f"/runs/compare/?ids={runs[0]},{runs[1]}")
        assert response.status_code == 200, response.status_code

    def cold(fn):
        def run():
            cache.delete(snapshot_diff_cache_key(f"{dataset.name}-0", f"{dataset.name}-1"))
            fn()
        return run

    mb = sum(p.stat().st_size for p in files) / 1e6
    base = _best(read_only, repeat)
    selector = _best(cold(lambda: runs_compare(run_ids=runs)), repeat)
    full = _best(cold(page), repeat)
    warm = _best(page, repeat)
    cache.delete(snapshot_diff_cache_key(f"{dataset.name}-0", f"{dataset.name}-1"))
    print(f"run comparison, two snapshots of {n:,} and {len(other):,} train rows ({mb:.1f} MB of CSV), "
          f"best of {repeat}:")
    print(f"  baseline: csv.reader over both files   {base:7.3f} s")
    print(f"  runs_compare (read + diff)             {selector:7.3f} s  ({selector / base:.1f}x)")
    print(f"  GET /runs/compare/ (whole page)        {full:7.3f} s  ({full / base:.1f}x)")
    print(f"  the same, snapshot diff cached         {warm:7.3f} s  ({warm / base:.2f}x)")


def _jobs(client, tag, parents, chunks, repeat, made_ids):
    """`made_ids` collects the ids of the jobs made, as they are made, for the caller to delete."""
    made = Job.objects.bulk_create([Job(kind="score_ambiguity", params={"dataset": tag},
                                        status=Job.Status.SUCCEEDED, progress=1.0, message="done")
                                    for _ in range(parents)])
    parent_ids = [j.pk for j in made] if made[0].pk else list(
        Job.objects.filter(kind="score_ambiguity", params__dataset=tag).values_list("pk", flat=True))
    made_ids += parent_ids
    children = Job.objects.bulk_create(
        [Job(kind="score_chunk", parent_id=p, params={"gan": 1, "direction": "AB", "epoch": 8,
                                         "ids": [k * 2048, k * 2048 + 2047]}, status=Job.Status.SUCCEEDED)
         for p in parent_ids for k in range(chunks)], batch_size=2000)
    child_ids = [j.pk for j in children] if children and children[0].pk else list(
        Job.objects.filter(kind="score_chunk", parent_id__in=parent_ids).values_list("pk", flat=True))
    made_ids += child_ids

    def plain():
        list(Job.objects.filter(parent__isnull=True).select_related("created_by")
             .order_by("-id")[:JOBS_PER_PAGE])

    def page():
        response = client.get("/jobs/")
        assert response.status_code == 200, response.status_code

    base = _best(plain, repeat)
    counted = _best(lambda: jobs_page(page=1), repeat)
    counts_only = _best(lambda: job_children_counts(job_ids=parent_ids[-JOBS_PER_PAGE:]), repeat)
    full = _best(page, repeat)
    total = Job.objects.count()
    print(f"jobs page, {parents} parents x {chunks} chunk jobs ({total:,} jobs in the table), "
          f"best of {repeat}:")
    print(f"  baseline: one page of jobs, no counts  {base * 1000:7.1f} ms")
    print(f"  child counts of that page alone        {counts_only * 1000:7.1f} ms")
    print(f"  jobs_page (count, page, child counts)  {counted * 1000:7.1f} ms")
    print(f"  GET /jobs/ (whole page, curator forms) {full * 1000:7.1f} ms")


def _map(dataset, client, n, repeat):
    rng = np.random.default_rng(0)
    Image.objects.bulk_create([
        Image(dataset=dataset, path=f"map/{i:07d}.png", file=f"datasets/{dataset.name}/map/{i:07d}.png",
              content_hash=f"{i:064x}", width=64, height=64, split=Image.Split.TRAIN, original_label=i % 8,
              label=i % 8, suspicion=float(rng.random()) if i % 3 else None,
              classifier_suggested_label=(i + 1) % 8 if i % 7 == 0 else None) for i in range(n)], batch_size=5000)
    ids = np.array(Image.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True))
    embeddings = rng.normal(size=(n, 512)).astype(np.float16)
    t0 = time.perf_counter()
    xy = pca_2d(embeddings)
    pca = time.perf_counter() - t0
    store.map_write(dataset, ids, xy, {"job": None, "method": "pca", "seconds": round(pca, 2), "made_at": "",
                                       "dimensions": 512, "embeddings": {"run": None, "size": 0, "mtime_ns": 0}})
    path = store.map_path(dataset)

    def bare():
        with np.load(path) as data:
            data["ids"], data["xy"]

    def endpoint():
        response = client.get(f"/api/datasets/{dataset.name}/map/")
        assert response.status_code == 200, response.status_code
        return response.content

    body = endpoint()
    as_json = len(json.dumps([[int(i), round(float(a), 4), round(float(b), 4), k % 8, None, 0.5, "unreviewed"]
                              for k, (i, (a, b)) in enumerate(zip(ids, xy))], separators=(",", ":")))
    base = _best(bare, repeat)
    payload = _best(lambda: store.map_payload(dataset, store.map_read(dataset)), repeat)
    full = _best(endpoint, repeat)
    print(f"dataset map, {n:,} train images, best of {repeat}:")
    print(f"  baseline: np.load of the map file (ids, xy) {base * 1000:7.1f} ms")
    print(f"  map_payload (file + database, encoded)     {payload * 1000:7.1f} ms  ({payload / base:.1f}x)")
    print(f"  GET /api/datasets/<name>/map/              {full * 1000:7.1f} ms  ({full / base:.1f}x), "
          f"{len(body) / 1e6:.2f} MB ({len(body) / n:.0f} bytes a point; the same as JSON rows: "
          f"{as_json / 1e6:.2f} MB)")
    print(f"  the job's PCA of {n:,} x 512 float16 embeddings  {pca:7.2f} s (once)")


if __name__ == "__main__":
    main()
