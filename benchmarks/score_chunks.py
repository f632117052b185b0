"""What chunking costs: the SSIM phase of score_ambiguity run in this process with several chunk sizes, against
one chunk per generator direction (scoring as it was before chunks) in the same run. Prints figures; asserts
nothing.

    python -m benchmarks.score_chunks --dataset demo --chunk-images 100000 1024 256 64

Each setting deletes the dataset's SSIM rows of its latest CycleGANs and computes them again (the same values:
scoring is deterministic), with the thresholds of the latest scoring job, so the dataset ends as it was. Start it
with no worker running, or workers will take chunks too and the figures are no longer this process's.
"""
import argparse
import sys
import time

from benchmarks._django import setup

setup()

from curation.gans.snapshots import pair_generators  # noqa: E402
from curation.jobs.errors import JobParamsError  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.selectors import workers_alive  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Job, TransformScore  # noqa: E402
from curation.scoring.calibration import current_thresholds  # noqa: E402
from curation.selectors import dataset_resolve  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description="SSIM throughput of score_ambiguity by chunk size, against one "
                                                 "chunk per direction, in this process.")
    parser.add_argument("--dataset")
    parser.add_argument("--chunk-images", type=int, nargs="+", default=[100000, 1024, 256, 64])
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting (the first decodes the images)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise SystemExit(f"--repeat must be at least 1 (got {args.repeat})")
    try:
        dataset = dataset_resolve(name=args.dataset)
    except JobParamsError as exc:
        raise SystemExit(str(exc)) from None
    gans = pair_generators(dataset)
    if not gans:
        raise SystemExit(f"{dataset.name} has no finished CycleGAN to score with")
    if workers_alive(queue="gpu"):
        print("warning: workers are running; they may take chunks and change these figures", file=sys.stderr)
    current = current_thresholds(dataset)
    print(f"{'chunk images':>12} {'run':>3} {'chunks':>6} {'SSIMs':>6} {'SSIM phase s':>12} {'images/s':>9} "
          f"{'job s':>7}")
    last = {}
    for size in args.chunk_images:
        for run in range(1, args.repeat + 1):
            TransformScore.objects.filter(gan__in=gans).delete()
            job = job_enqueue(kind="score_ambiguity", send=False, params={
                "dataset": dataset.name, "threshold": current["threshold"],
                "class_thresholds": current["class_thresholds"], "chunk_images": size})
            started = time.perf_counter()
            job_run(job_id=job.pk, worker=worker_label("bench:"))
            wall = time.perf_counter() - started
            job.refresh_from_db()
            if job.status != Job.Status.SUCCEEDED:
                raise SystemExit(f"job {job.pk} {job.status}: {job.message}")
            chunks = list(job.children.all())
            span = (max(c.finished_at for c in chunks) - min(c.started_at for c in chunks)).total_seconds()
            n = job.result["ssim_computed"]
            print(f"{size:>12} {run:>3} {len(chunks):>6} {n:>6} {span:>12.2f} {n / span:>9.0f} {wall:>7.2f}")
            last[size] = n / span
    baseline = last[args.chunk_images[0]]
    print(f"last run of each setting against the first ({args.chunk_images[0]} images per chunk):")
    for size, rate in last.items():
        print(f"  {size:>8} images per chunk: {rate:6.0f} images/s, {rate / baseline:.2f}x")


if __name__ == "__main__":
    main()
