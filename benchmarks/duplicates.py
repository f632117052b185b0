"""Measure near-duplicate and non-face detection against known truth: synthetic faces with copies made five ways
(re-captured, JPEG, blurred, mirrored, re-cropped; truth.csv duplicate_kind)
(some across splits, train/test among them) and non-faces, imported by the real importer, then the find_duplicates
job; pairwise recall and precision of its groups against truth.csv's duplicate_group, the leaked test images it
reports against the true ones, and the AUROC of an outlier score against truth.csv's outlier column.

The outlier score is scikit-learn's IsolationForest on HOG descriptors (scikit-image; 32 x 32 grey, 8 orientations,
8 px cells): faces share a layout of edges, noise, scenery and blank frames do not. Printed beside it, the mean
pHash distance to the 10 nearest images (the hashes find_duplicates uses).

    python -m benchmarks.duplicates                   # 2,000 faces, 10 % copies, 5 % non-faces, seeds 0 1 2
    python -m benchmarks.duplicates --n 400 --seeds 0
"""
import argparse
import csv
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from skimage.feature import hog
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.test import override_settings  # noqa: E402

from curation.duplicates.detect import features_of, pair_scores  # noqa: E402
from curation.duplicates.leaks import dataset_leaks  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Dataset, DuplicateMember, Job  # noqa: E402
from training.synthetic_faces import DEFAULT_DIFFICULTY, make_synthetic_faces  # noqa: E402

GOAL = 0.9  # recall and precision (issue #18)
KIND_GOAL = 0.95  # recall for each way a copy is made (issue #33)
OUTLIER_GOAL = 0.95


def outlier_scores(paths):
    """IsolationForest anomaly scores (high: unlike the rest) of HOG descriptors of the images."""
    features = np.array([hog(np.asarray(PILImage.open(p).convert("L").resize((32, 32), PILImage.BOX)),
                             orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for p in paths])
    forest = IsolationForest(n_estimators=300, random_state=0).fit(features)
    return -forest.score_samples(features)


def hash_knn_scores(paths, k=10):
    """Mean pHash distance (bits) to the k nearest other images."""
    hashes = features_of(PILImage.open(p) for p in paths).hashes
    distances = np.bitwise_count(hashes[:, None] ^ hashes[None, :]).astype(float)
    np.fill_diagonal(distances, np.inf)
    return np.sort(distances, axis=1)[:, : min(k, len(paths) - 1)].mean(1)


def kind_scores(truth, found_groups):
    """Per way a copy was made (truth.csv's duplicate_kind): {kind: {"copies", "recall", "precision"}}. Recall: the
    copies found in one group with their original. Precision: of the found pairs that hold a copy of that kind, the
    share whose two images are copies of one face."""
    true_group = {row["path"]: row["duplicate_group"] for row in truth if row["duplicate_group"]}
    kind = {row["path"]: row["duplicate_kind"] for row in truth if row.get("duplicate_kind")}
    original = {group: row["path"] for row in truth for group in [row["duplicate_group"]]
                if group and not row.get("duplicate_kind")}
    found_group = {path: g for g, paths in enumerate(found_groups) for path in paths}
    out = {}
    for name in sorted(set(kind.values())):
        copies = [p for p, k in kind.items() if k == name]
        linked = sum(p in found_group and found_group[p] == found_group.get(original[true_group[p]]) for p in copies)
        pairs = right = 0
        for paths in found_groups:
            for a in paths:
                if kind.get(a) != name:
                    continue
                for b in paths:
                    if b != a:
                        pairs += 1
                        right += true_group.get(b) == true_group[a]
        out[name] = {"copies": len(copies), "recall": linked / len(copies) if copies else None,
                     "precision": right / pairs if pairs else None}
    return out


def _run(kind, params):
    job = job_enqueue(kind=kind, send=False, params=params)
    t0 = time.perf_counter()
    job_run(job_id=job.pk, worker=worker_label("bench:"))
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"{kind} job {job.pk} {job.status}: {job.message} {job.error[:500]}")
    return job, time.perf_counter() - t0


def one_seed(args, seed, work):
    faces = work / f"faces-{seed}"
    summary = make_synthetic_faces(faces, n=args.n, size=args.size, seed=seed, duplicates=args.duplicates,
                                   nonfaces=args.nonfaces, workers=args.workers, difficulty=args.difficulty)
    with open(faces / "truth.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    with open(faces / "labels.csv", newline="") as fh:
        split = {row["path"]: row["split"] for row in csv.DictReader(fh)}
    name = f"{args.name}-{seed}"
    Dataset.objects.filter(name=name).delete()
    with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, work]):
        _run("import_dataset", {"path": str(faces / "labels.csv"), "format": "csv", "name": name})
    dataset = Dataset.objects.get(name=name)
    job, seconds = _run("find_duplicates", {"dataset": name})

    true_groups = {}
    for row in truth:
        if row["duplicate_group"]:
            true_groups.setdefault(row["duplicate_group"], []).append(row["path"])
    found = {}
    for group, path in DuplicateMember.objects.filter(dataset=dataset).values_list("group", "image__path"):
        found.setdefault(group, []).append(path)
    scores = pair_scores(found.values(), true_groups.values())
    by_kind = kind_scores(truth, found.values())
    # Test images with a true copy in train or val, against those the leak report lists.
    true_leaked = {p for paths in true_groups.values() if {split[q] for q in paths} - {"test"}
                   for p in paths if split[p] == "test"}
    reported = {p for paths in found.values() if {split[q] for q in paths} - {"test"}
                for p in paths if split[p] == "test"}
    leaks = dataset_leaks(dataset)
    if leaks["leaked_test_images"] != len(reported):
        raise SystemExit(f"dataset_leaks counts {leaks['leaked_test_images']} leaked test images, the groups "
                         f"{len(reported)}")
    paths = [faces / row["path"] for row in truth]
    is_outlier = np.array([row["outlier"] == "1" for row in truth])
    t0 = time.perf_counter()
    auroc = roc_auc_score(is_outlier, outlier_scores(paths)) if is_outlier.any() else None
    outlier_seconds = time.perf_counter() - t0
    knn_auroc = roc_auc_score(is_outlier, hash_knn_scores(paths)) if is_outlier.any() else None
    Dataset.objects.filter(name=name).delete()
    return {"seed": seed, "summary": summary, "scores": scores, "by_kind": by_kind, "seconds": seconds,
            "groups": len(found),
            "true_groups": len(true_groups), "true_leaked": len(true_leaked), "reported_leaked": len(reported),
            "right_leaked": len(true_leaked & reported),
            "auroc": auroc, "knn_auroc": knn_auroc, "outlier_seconds": outlier_seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="images per seed")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of images that are copies")
    parser.add_argument("--nonfaces", type=float, default=0.05, help="share of images that are not faces")
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY, help="of the faces (0-1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=1, help="processes that render the faces")
    parser.add_argument("--name", default="bench-duplicates")
    args = parser.parse_args(argv)
    if args.n < 10:
        raise SystemExit(f"--n must be at least 10 (got {args.n})")
    work = Path(tempfile.mkdtemp(prefix="bench_duplicates_"))
    rows = []
    try:
        for seed in args.seeds:
            rows.append(one_seed(args, seed, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = io.StringIO()
    print(f"{args.n} images of {args.size} px per seed, difficulty {args.difficulty}: {args.duplicates:.0%} "
          f"near-duplicate copies, {args.nonfaces:.0%} non-faces", file=out)
    print("seed  groups (true)  pairs right/found/true  recall  precision  leaked test right/reported/true  "
          "find_duplicates s  outlier AUROC (IsolationForest on HOG; pHash 10-NN)", file=out)
    for r in rows:
        s = r["scores"]
        print(f"{r['seed']:>4}  {r['groups']:>6} ({r['true_groups']:>4})  {s['right_pairs']:>6}/{s['found_pairs']}/"
              f"{s['true_pairs']:<6}  {_f(s['recall']):>6}  {_f(s['precision']):>9}  "
              f"{r['right_leaked']:>5}/{r['reported_leaked']}/{r['true_leaked']:<18}  {r['seconds']:>17.1f}  "
              f"{_f(r['auroc'])}; {_f(r['knn_auroc'])}", file=out)
    kinds = sorted({k for r in rows for k in r["by_kind"]})
    if kinds:
        print("copies linked to their original, per way the copy was made (recall; precision of the pairs holding "
              "one):", file=out)
        for kind in kinds:
            cells = [r["by_kind"].get(kind) for r in rows]
            print(f"  {kind:<10} " + "   ".join(
                f"seed {r['seed']}: {_f(c['recall'])} of {c['copies']}; {_f(c['precision'])}" if c else
                f"seed {r['seed']}: –" for r, c in zip(rows, cells)), file=out)
        worst = {k: min((r["by_kind"][k]["recall"] for r in rows if r["by_kind"].get(k, {}).get("recall")
                         is not None), default=None) for k in kinds}
        met = all(v is not None and v >= KIND_GOAL for v in worst.values())
        print("per-kind recall, worst seed: " + ", ".join(f"{k} {_f(v)}" for k, v in worst.items())
              + f" (goal >= {KIND_GOAL} each: {'met' if met else 'NOT met'})", file=out)
    recall = [r["scores"]["recall"] for r in rows if r["scores"]["recall"] is not None]
    precision = [r["scores"]["precision"] for r in rows if r["scores"]["precision"] is not None]
    aurocs = [r["auroc"] for r in rows if r["auroc"] is not None]
    if recall and precision:
        met = min(recall) >= GOAL and min(precision) >= GOAL
        print(f"near-duplicate pairs: recall {min(recall):.3f}-{max(recall):.3f}, precision "
              f"{min(precision):.3f}-{max(precision):.3f} (goal >= {GOAL} each: {'met' if met else 'NOT met'})",
              file=out)
    if aurocs:
        print(f"outlier AUROC (IsolationForest on HOG): {min(aurocs):.3f}-{max(aurocs):.3f} "
              f"(goal >= {OUTLIER_GOAL}: {'met' if min(aurocs) >= OUTLIER_GOAL else 'NOT met'})", file=out)
    print(out.getvalue(), end="")


def _f(value):
    return "–" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
