"""Do the random audit's estimates cover the truth? Synthetic faces with a truth file, over several seeds: each seed
imports its faces, feeds the queue with a simulated model, has simulated reviewers work the real queue (claims
through image_claim_next with no filter, so the dataset's audit share of the cards are random audit draws) for a
budget of decisions, then compares the audit's estimates (curation/review/audit.py) with the truth:

- the estimated share of wrong labels, with its 95 % Wilson interval, against the true share over the dataset;
- the share still wrong after the review, against the true share left;
- after a rescore, which signal the fusion chose and from what (the audit, the queue's decisions, or the default),
  and the AUROC of the rescored order against the truth on the train images still to review, beside each signal's
  from the first scoring on the same images.

The model feeding the queue is simulated, not trained: probabilities and embeddings drawn from the true class and
the given label with noise (a model that partly learnt the wrong labels, as one trained on them does), imported with
import_predictions. The estimates do not depend on the model (the audit's draw is independent of the suspicion);
a trained classifier would only cost minutes per seed. Reviewers decide from truth.csv, right unless --error.

    python -m benchmarks.audit_estimates                     # 10 seeds, 2,000 faces, annotator noise, share 0.05
    python -m benchmarks.audit_estimates --seeds 2 --n 600 --budget 150      # a smoke run
"""
import argparse
import csv
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import override_settings  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from curation.cleaning_bench.reviewers import bench_users  # noqa: E402
from curation.jobs.runner import job_run, worker_label  # noqa: E402
from curation.jobs.services import job_enqueue  # noqa: E402
from curation.models import Dataset, Image, Job  # noqa: E402
from curation.review.audit import dataset_audit_estimates, dataset_audit_share_set  # noqa: E402
from curation.review.services import image_claim_next, image_decide  # noqa: E402
from training.labels import CLASSES, CODE  # noqa: E402
from training.synthetic_faces import NOISE_MODELS, PARTNER, make_synthetic_faces  # noqa: E402


def _run(kind, params):
    job = job_enqueue(kind=kind, send=False, params=params)
    job_run(job_id=job.pk, worker=worker_label("bench:"))
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"{kind} job {job.pk} {job.status}: {job.message} {job.error[:500]}")
    return job


def simulated_model(paths, given, true, rng, out):
    """A CSV of probabilities and a .npy of embeddings for `paths`: the true class and the given label both pull
    (a model that learnt part of the wrong labels), plus noise. Returns (csv path, npy path)."""
    n = len(paths)
    logits = 1.5 * np.eye(8)[true] + 1.5 * np.eye(8)[given] + rng.normal(0, 1.5, (n, 8))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    centres = rng.normal(0, 1, (8, 16))
    embeddings = (1.0 * centres[true] + 0.8 * centres[given] + rng.normal(0, 1.2, (n, 16))).astype(np.float32)
    csv_path, npy_path = out / "model.csv", out / "model.npy"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", *CLASSES])
        for p, row in zip(paths, probs):
            writer.writerow([p, *(repr(float(v)) for v in row)])
    np.save(npy_path, embeddings)
    return csv_path, npy_path


def review(dataset, truth, budget, error, rng, users):
    """`budget` decisions from the default queue (audit cards included), the users taking turns."""
    audit_cards = 0
    for k in range(budget):
        user = users[k % len(users)]
        image = image_claim_next(user=user, dataset=dataset)
        if image is None:
            break
        audit_cards += image.audit
        true, noisy = truth[image.path]
        right = rng.random() >= error
        if noisy == right:  # a wrong label caught, or a right one changed by mistake: relabel
            to = true if noisy else CODE[PARTNER[CLASSES[image.label]]]
            image_decide(user=user, image_id=image.pk, action="relabel", version=image.version, label=to)
        else:
            image_decide(user=user, image_id=image.pk, action="confirm", version=image.version)
    return audit_cards


def auroc(values, wrong):
    values = np.asarray(values, float)
    known = ~np.isnan(values)
    if known.sum() < 2 or len(set(np.asarray(wrong)[known])) < 2:
        return None
    return float(roc_auc_score(np.asarray(wrong)[known], values[known]))


def one_seed(seed, args, work):
    name = f"bench-audit-{seed}"
    Dataset.objects.filter(name=name).delete()
    faces = work / f"faces-{seed}"
    make_synthetic_faces(faces, n=args.n, size=args.size, noise=args.noise, seed=seed, noise_model=args.noise_model)
    with open(faces / "truth.csv", newline="") as fh:
        truth = {r["path"]: (CODE[r["true_label"]], r["noisy"] in ("1", "True", "true")) for r in csv.DictReader(fh)}
    started = time.perf_counter()
    _run("import_dataset", {"path": str(faces / "labels.csv"), "format": "csv", "name": name})
    dataset = Dataset.objects.get(name=name)
    dataset_audit_share_set(dataset_id=dataset.pk, audit_share=args.audit_share)
    dataset.refresh_from_db()
    rng = np.random.default_rng(seed)
    train = list(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN).values_list("path", "label"))
    paths = [p for p, _ in train]
    csv_path, npy_path = simulated_model(paths, np.array([g for _, g in train]),
                                         np.array([truth[p][0] for p in paths]), rng, faces)
    _run("import_predictions", {"dataset": name, "path": str(csv_path), "embeddings": str(npy_path),
                                "out_of_sample": True, "feed_queue": True})
    _run("score_ambiguity", {"dataset": name})
    rows = list(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN)
                .values_list("path", "suspicion", "label_quality", "datalab_label_quality"))
    wrong = np.array([truth[r[0]][1] for r in rows])
    f = lambda v: np.nan if v is None else v  # noqa: E731
    under_truth = {
        "default": auroc([f(r[1]) for r in rows], wrong),
        "classifier": auroc([-f(r[2]) for r in rows], wrong),
        "datalab": auroc([-f(r[3]) for r in rows], wrong),
    }
    users = bench_users("audit-bench", 2)
    audit_cards = review(dataset, truth, args.budget, args.error, rng, users)
    estimates = dataset_audit_estimates(dataset)
    _run("score_ambiguity", {"dataset": name})
    fusion = Job.objects.filter(kind="score_ambiguity").latest("id").result["fusion"]
    # What the rescore's order is worth on the images still to review, beside the first scoring's signals there.
    left_rows = {p: (s, d, q) for p, s, d, q in Image.objects.filter(
        dataset=dataset, split=Image.Split.TRAIN, status=Image.Status.UNREVIEWED).values_list(
        "path", "suspicion", "datalab_label_quality", "label_quality")}
    still = np.array([r[0] in left_rows for r in rows])
    on_rest = {k: auroc(v, wrong[still]) for k, v in {
        "order after the rescore": [f(left_rows[r[0]][0]) for r in rows if r[0] in left_rows],
        # The rescore's own signals: Datalab's neighbours now carry the labels reviewers corrected.
        "classifier after": [-f(left_rows[r[0]][2]) for r in rows if r[0] in left_rows],
        "datalab after": [-f(left_rows[r[0]][1]) for r in rows if r[0] in left_rows],
        "default": [f(r[1]) for r, s in zip(rows, still) if s],
        "classifier": [-f(r[2]) for r, s in zip(rows, still) if s],
        "datalab": [-f(r[3]) for r, s in zip(rows, still) if s]}.items()}
    everything = list(Image.objects.filter(dataset=dataset).values_list("path", "status", "label"))
    true_rate = float(np.mean([truth[p][1] for p, _, _ in everything]))
    left = float(np.mean([truth[p][1] and status == Image.Status.UNREVIEWED or
                          (status != Image.Status.UNREVIEWED and status != Image.Status.EXCLUDED and
                           label != truth[p][0]) for p, status, label in everything]))
    overall, remaining = estimates["overall"], estimates["remaining"]
    out = {
        "seed": seed, "images": len(everything), "decisions": args.budget, "audit_cards": int(audit_cards),
        "sample": overall["n"], "sample_wrong": overall["wrong"], "true_rate": true_rate,
        "estimate": overall.get("estimate"), "low": overall.get("low"), "high": overall.get("high"),
        "covers": overall["enough"] and overall["low"] <= true_rate <= overall["high"],
        "true_left": left, "left_estimate": remaining.get("estimate"), "left_low": remaining.get("low"),
        "left_high": remaining.get("high"),
        "left_covers": remaining["enough"] and remaining["low"] <= left <= remaining["high"],
        "fusion_source": fusion.get("source", "queue decisions" if fusion.get("auroc") else "default"),
        "fusion_used": fusion.get("used"), "auroc_under_truth": under_truth, "auroc_on_the_rest": on_rest,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not args.keep:
        Dataset.objects.filter(name=name).delete()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="faces per seed")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--noise-model", choices=NOISE_MODELS, default="annotators")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--audit-share", type=float, default=0.05)
    parser.add_argument("--budget", type=int, default=600, help="decisions per seed")
    parser.add_argument("--error", type=float, default=0.0, help="simulated reviewers' error rate")
    parser.add_argument("--out", type=Path, help="write the per-seed rows as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the datasets (default: delete them)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    rows = []
    try:
        with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, work]):
            for seed in range(args.seeds):
                rows.append(one_seed(seed, args, work))
                r = rows[-1]
                interval = "not enough" if r["estimate"] is None else \
                    f"{r['estimate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
                print(f"seed {seed}: true {r['true_rate']:.3f}, audit {interval} on {r['sample']} decisions "
                      f"({r['audit_cards']} audit cards of {r['decisions']}), covers {r['covers']}; left: true "
                      f"{r['true_left']:.3f}, covers {r['left_covers']}; fusion {r['fusion_source']} -> "
                      f"{r['fusion_used']}; AUROC on the images left to review "
                      f"{json.dumps({k: v and round(v, 3) for k, v in r['auroc_on_the_rest'].items()})}; "
                      f"{r['seconds']} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            get_user_model().objects.filter(username__startswith="audit-bench-").delete()
    measured = [r for r in rows if r["estimate"] is not None]
    widths = [r["high"] - r["low"] for r in measured]
    print(f"\n{args.noise_model} noise {args.noise}, {args.n} faces, audit share {args.audit_share}, {args.budget} "
          f"decisions a seed: the interval covered the true share in {sum(r['covers'] for r in rows)} of "
          f"{len(rows)} seeds ({len(rows) - len(measured)} without enough audit decisions); median width "
          f"{statistics.median(widths) if widths else float('nan'):.3f}, median sample "
          f"{statistics.median(r['sample'] for r in rows):.0f}; share left covered in "
          f"{sum(r['left_covers'] for r in rows)} of {len(rows)}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
