"""Scale of find_duplicates: N synthetic 64 px faces (10 % copies made the five ways, 5 % non-faces), imported by the
import job, then the find_duplicates job, with its wall time and the peak growth of the process's anonymous memory
(RssAnon) beside a floor measured in the same run: reading and decoding every file, keeping nothing. The goals
(issue #33): 300,000 images in at most 10 minutes, RssAnon growth at most a quarter of the tensor cache's size
(N x 3 x 64 x 64 bytes), time growing no faster than about N log N (compare two runs). Recall and precision of the
copies per kind are printed too, since the candidate index's crowding grows with N.

Runs in a data directory of its own: FER_DATA_DIR if set, else a temporary one removed at the end.

    python -m benchmarks.duplicates_scale --n 30000
    python -m benchmarks.duplicates_scale --n 300000 --faces DIR   # DIR: faces made before (labels.csv, truth.csv)
"""
import argparse
import csv
import os
import shutil
import tempfile
from pathlib import Path

_OWN_DATA_DIR = None
if __name__ == "__main__" and "FER_DATA_DIR" not in os.environ:  # run, not imported (the layer test imports it)
    _OWN_DATA_DIR = tempfile.mkdtemp(prefix="bench_dup_scale_")
    os.environ["FER_DATA_DIR"] = _OWN_DATA_DIR

from benchmarks._django import setup  # noqa: E402

setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import override_settings  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from benchmarks.duplicates import kind_scores  # noqa: E402
from benchmarks.scale import MB, Measure  # noqa: E402
from curation.duplicates.detect import pair_scores  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Dataset, DuplicateMember, Image, Job  # noqa: E402
from training.synthetic_faces import make_synthetic_faces  # noqa: E402

MINUTES_GOAL = {300_000: 10.0}


def _job(kind, params, name):
    job = job_enqueue(kind=kind, send=False, params=params)
    with Measure(name) as measure:
        job_run(job_id=job.pk, worker=worker_label("bench:"))
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"{kind} job {job.pk} {job.status}: {job.message} {job.error[:500]}")
    return job, measure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30_000, help="synthetic faces (default 30,000)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--faces", type=Path, help="use faces made before in DIR instead of making them")
    parser.add_argument("--workers", type=int, default=1, help="processes that make the faces")
    args = parser.parse_args(argv)
    if args.n < 10:
        raise SystemExit(f"--n must be at least 10 (got {args.n})")
    work = Path(tempfile.mkdtemp(prefix="dup_scale_", dir=settings.DATA_DIR))
    name = f"bench-dup-scale-{args.n}"
    try:
        call_command("migrate", verbosity=0)
        faces = args.faces or work / "faces"
        if not args.faces:
            with Measure("make faces"):
                make_synthetic_faces(faces, n=args.n, size=args.size, seed=0, duplicates=0.1, nonfaces=0.05,
                                     workers=args.workers, chunk=1000)
        with open(faces / "truth.csv", newline="") as fh:
            truth = list(csv.DictReader(fh))
        if len(truth) != args.n:
            raise SystemExit(f"{faces} holds {len(truth)} faces, not --n {args.n}")
        Dataset.objects.filter(name=name).delete()
        with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, faces.parent]):
            _job("import_dataset", {"path": str(faces / "labels.csv"), "format": "csv", "name": name}, "import job")
        dataset = Dataset.objects.get(name=name)
        media = Path(settings.MEDIA_ROOT)
        files = [media / f for f in Image.objects.filter(dataset=dataset).order_by("id").values_list("file", flat=True)]
        with Measure("read + decode every file") as floor:
            for path in files:
                with PILImage.open(path) as image:
                    image.load()
        del files
        # Imported once per worker process, before its first find_duplicates job: measured apart from the job.
        with Measure("import faiss") as library:
            import faiss  # noqa: F401
        job, found_stage = _job("find_duplicates", {"dataset": name}, "find_duplicates job")

        true_groups, found = {}, {}
        for row in truth:
            if row["duplicate_group"]:
                true_groups.setdefault(row["duplicate_group"], []).append(row["path"])
        for group, path in DuplicateMember.objects.filter(dataset=dataset).values_list("group", "image__path"):
            found.setdefault(group, []).append(path)
        scores = pair_scores(found.values(), true_groups.values())
        by_kind = kind_scores(truth, found.values())
        cache = args.n * 3 * args.size * args.size
        share = found_stage.growth / cache
        goal_minutes = MINUTES_GOAL.get(args.n)
        print(f"find_duplicates on {args.n:,} faces of {args.size} px ({job.result['groups']:,} groups, "
              f"{job.result['pairs']:,} pairs, {job.result['unreadable_count']} unreadable); CPUs: "
              f"{len(os.sched_getaffinity(0))}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        print(f"  wall {found_stage.seconds:.1f} s ({found_stage.seconds / args.n * 1e3:.2f} ms an image); floor "
              f"(read + decode every file) {floor.seconds:.1f} s; x floor {found_stage.seconds / floor.seconds:.2f}"
              + (f"; goal <= {goal_minutes:.0f} min: {'met' if found_stage.seconds <= goal_minutes * 60 else 'MISSED'}"
                 if goal_minutes else ""))
        print(f"  RssAnon growth +{found_stage.growth / MB:.1f} MiB (floor's +{floor.growth / MB:.1f} MiB; importing "
              f"faiss before, once per process: +{library.growth / MB:.1f} MiB); tensor "
              f"cache {cache / MB:.0f} MiB; growth / cache {share:.3f} (goal <= 0.25: "
              f"{'met' if share <= 0.25 else 'MISSED'})")
        print(f"  stages (s): {job.result.get('seconds')}; links {job.result['pairs'] + job.result['pairs_dropped_when_aligned']:,}, "
              f"{job.result['pairs_dropped_when_aligned']:,} dropped once aligned")
        print(f"  pairs: recall {scores['recall']:.3f}, precision {scores['precision']:.3f} "
              f"({scores['right_pairs']}/{scores['found_pairs']}/{scores['true_pairs']} right/found/true)")
        print("  per kind (recall; precision): " + ", ".join(
            f"{k} {v['recall']:.3f}; {'-' if v['precision'] is None else format(v['precision'], '.3f')}"
            for k, v in by_kind.items()))
        Dataset.objects.filter(name=name).delete()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if _OWN_DATA_DIR:
            shutil.rmtree(_OWN_DATA_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
