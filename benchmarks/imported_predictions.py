"""Does the queue follow the stronger model? Synthetic faces with a truth file, imported twice by the real importer:
once with their (noisy) labels, once with their true labels. The product's classifier is trained with out-of-fold
predictions on each; the one trained on the true labels is exported as a file (probabilities CSV + embeddings .npy)
and imported into the noisy dataset with import_predictions, as a user brings a stronger model of their own. The
noisy dataset's queue is scored three times, each fed by another model:

- the product's own run (trained on the noisy labels), as the product works without an import;
- the same run exported to a file and imported back (the import path must change nothing: same precision);
- the model trained on the true labels, imported.

For each: the precision of the queue's top 10 % (most suspicious train images) against truth.csv, the wrong labels
found within that budget, and the suspicion's AUROC. Jobs run in this process (the job runner, as --inline).

    python -m benchmarks.imported_predictions                 # 3,000 faces, 48 px, small_cnn, 12 epochs, 3 folds
    python -m benchmarks.imported_predictions --n 1500 --size 40 --epochs 10 --folds 2    # a smoke run (chance)

At 1,500 faces both classifiers stay at chance and the comparison says nothing; 3,000 faces at 48 px for 12 epochs
is the smallest size where the product's classifier learnt in earlier runs (docs/results.md, Datalab section).
"""
import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.test import override_settings  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from curation.classifier.features import oof_features_path  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Dataset, Image, Job, Run  # noqa: E402
from curation.review.dataset_settings import dataset_queue_run_set  # noqa: E402
from training.labels import CLASSES  # noqa: E402
from training.synthetic_faces import make_synthetic_faces  # noqa: E402

BUDGET = 0.10  # the share of the train split a review budget reaches, most suspicious first


def _run(kind, params):
    job = job_enqueue(kind=kind, send=False, params=params)
    t0 = time.perf_counter()
    job_run(job_id=job.pk, worker=worker_label("bench:"))
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"{kind} job {job.pk} {job.status}: {job.message} {job.error[:500]}")
    return job, time.perf_counter() - t0


def export_run(run, out):
    """A product run's out-of-fold probabilities and embeddings as a user's files: a CSV of path + the 8 classes
    by name, and a .npy of embeddings in the CSV's row order. Returns (csv path, npy path)."""
    with np.load(Path(settings.MEDIA_ROOT) / run.oof_file) as oof:
        ids, probs = oof["ids"], oof["probs"]
    paths = dict(Image.objects.filter(id__in=ids.tolist()).values_list("id", "path"))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", *CLASSES])
        for i, row in zip(ids.tolist(), probs):
            writer.writerow([paths[i], *(repr(float(v)) for v in row)])
    np.save(out / "embeddings.npy", np.load(oof_features_path(run)).astype(np.float32))
    return out / "predictions.csv", out / "embeddings.npy"


def queue_measure(dataset, noisy):
    """Top-BUDGET precision, wrong labels reached, their total and the suspicion's AUROC over the train split."""
    rows = [(s, noisy[p]) for p, s in Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN)
            .values_list("path", "suspicion") if s is not None]
    scores = np.array([s for s, _ in rows])
    wrong = np.array([w for _, w in rows])
    budget = int(round(BUDGET * len(rows)))
    top = np.argsort(-scores, kind="stable")[:budget]
    return {"precision": float(wrong[top].mean()), "reached": int(wrong[top].sum()), "budget": budget,
            "wrong": int(wrong.sum()), "scored": len(rows), "auroc": float(roc_auc_score(wrong, scores))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="synthetic faces, all splits")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--difficulty", type=float, default=0.3, help="as bench_cleaning's CPU profile")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="bench-imported")
    parser.add_argument("--keep", action="store_true", help="keep the datasets and files (default: delete them)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_imported_"))
    started = time.perf_counter()
    noisy_name, true_name = f"{args.name}-noisy", f"{args.name}-true"
    Dataset.objects.filter(name__in=[noisy_name, true_name]).delete()
    try:
        faces = work / "faces"
        make_synthetic_faces(faces, n=args.n, size=args.size, noise=args.noise, seed=args.seed,
                             difficulty=args.difficulty)
        with open(faces / "truth.csv", newline="") as fh:
            truth = {row["path"]: row for row in csv.DictReader(fh)}
        with open(faces / "labels.csv", newline="") as fh:
            labels = list(csv.DictReader(fh))
        with open(faces / "true_labels.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "split"])
            for row in labels:
                writer.writerow([row["path"], truth[row["path"]]["true_label"], row["split"]])
        noisy = {p: t["noisy"] == "1" for p, t in truth.items()}
        train = dict(arch="small_cnn", size=args.size, epochs=args.epochs, folds=args.folds, batch_size=64,
                     seed=args.seed)
        with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, work]):
            _run("import_dataset", {"path": str(faces / "labels.csv"), "format": "csv", "name": noisy_name})
            _run("import_dataset", {"path": str(faces / "true_labels.csv"), "format": "csv", "name": true_name})
            seconds = {}
            job, seconds["train on noisy labels"] = _run("train_classifier", {"dataset": noisy_name, **train})
            product = Run.objects.get(pk=job.result["run"])
            job, seconds["train on true labels"] = _run("train_classifier", {"dataset": true_name, **train})
            oracle = Run.objects.get(pk=job.result["run"])
            dataset = Dataset.objects.get(name=noisy_name)
            rows = []

            def score(what, run, trained):
                job, took = _run("score_ambiguity", {"dataset": noisy_name})
                assert job.result["classifier_run"] == run.pk, (job.result["classifier_run"], run.pk)
                rows.append((what, run, trained, queue_measure(dataset, noisy), took))

            score("product run (noisy labels)", product, product)
            for what, source in (("product run, exported and imported", product),
                                 ("model on true labels, imported", oracle)):
                csv_path, npy_path = export_run(source, work / f"export-{source.pk}")
                job, _ = _run("import_predictions", {"dataset": noisy_name, "path": str(csv_path),
                                                     "embeddings": str(npy_path), "out_of_sample": True,
                                                     "feed_queue": True})
                score(what, Run.objects.get(pk=job.result["run"]), source)
            dataset_queue_run_set(dataset_id=dataset.pk, queue_run=None)
    finally:
        if not args.keep:
            Dataset.objects.filter(name__in=[noisy_name, true_name]).delete()
            shutil.rmtree(work, ignore_errors=True)
    print(f"{args.n} synthetic faces ({args.size} px, difficulty {args.difficulty}, {args.noise:.0%} wrong labels, "
          f"seed {args.seed}); small_cnn {args.epochs} epochs, {args.folds} folds; queue budget: the top "
          f"{BUDGET:.0%} of the train split")
    for what, took in seconds.items():
        print(f"  {what}: {took:.0f} s")
    print("| model feeding the queue | test accuracy of the model | top-10 % precision | wrong labels reached | "
          "suspicion AUROC |")
    print("|---|---|---|---|---|")
    for what, run, trained, m, took in rows:
        accuracy = trained.test_metrics["accuracy"]
        print(f"| {what} (run {run.pk}) | {accuracy:.3f} | {m['precision']:.3f} | {m['reached']} of {m['wrong']} "
              f"(budget {m['budget']} of {m['scored']}) | {m['auroc']:.3f} |")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
