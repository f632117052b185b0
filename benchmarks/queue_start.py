"""Does the review queue find more wrong labels when its out-of-fold models start from the self-supervised
pretraining? On one make_synthetic_faces folder (the noisy labels of labels.csv, the truth of truth.csv) and one
pretrained backbone (`pretrain_ssl`'s weights file, or benchmarks.ssl_start --backbone), the out-of-fold
probabilities are trained twice a seed, as the product's train_classifier --folds trains them (the same stratified
folds for both starts), from scratch and from the backbone (--init ssl:ID), and each is read as the scoring job reads
it: cleanlab's label quality (normalised margin) ranks the train split. Printed for each: AUROC and average precision
against the wrong labels, the wrong labels among the top of a review budget (10 % of train), and the out-of-fold
accuracy against the true labels; then the paired difference a seed. Asserts nothing.

    python -m benchmarks.queue_start --faces DIR/faces --backbone DIR/data/media/ssl/job2/backbone.pt \\
        --epochs 16 --batch-size 64 --seeds 0 1 --threads 1
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from cleanlab.rank import get_label_quality_scores
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks._django import setup

setup()  # the scoring's ranking (LABEL_QUALITY) lives beside the product's models

from benchmarks.robust_regime import load_faces  # noqa: E402
from curation.scoring.fusion import LABEL_QUALITY  # noqa: E402
from training.config import TrainConfig, noisy_val_schedule  # noqa: E402
from training.engine import fit, out_of_fold_splits, predict_proba  # noqa: E402
from training.placement import pick_device  # noqa: E402


def out_of_fold(cfg, x, y, x_val, y_val, *, folds, init, device):
    """Each train image's class probabilities from the fold model that did not see it (the train_classifier job's
    folds, out_of_fold_splits), and the tensors each fold took from `init` (0 for none)."""
    probs, loaded = np.zeros((len(y), cfg.num_classes), np.float32), []
    for fit_idx, held_idx in out_of_fold_splits(y, folds, cfg.seed):
        result = fit(cfg, x, y, x_val, y_val, device=device, train_index=fit_idx, init=init)
        probs[held_idx] = predict_proba(result.model, x[held_idx], batch_size=256, device=device, mode="stream")
        loaded.append(result.init["loaded"] if result.init else 0)
    return probs, loaded


def queue_figures(probs, given, true, budget):
    """How the scoring job's cleanlab ranking of `probs` under the `given` labels finds the wrong ones."""
    wrong = given != true
    suspicion = 1 - get_label_quality_scores(given, probs / probs.sum(1, keepdims=True), method=LABEL_QUALITY)
    top = np.argsort(-suspicion, kind="stable")[:budget]
    return {"auroc": float(roc_auc_score(wrong, suspicion)), "ap": float(average_precision_score(wrong, suspicion)),
            "wrong_in_top": int(wrong[top].sum()), "oof_accuracy": float(np.mean(probs.argmax(1) == true))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, required=True, help="a make_synthetic_faces folder")
    parser.add_argument("--backbone", type=Path, required=True, help="a pretrained backbone file")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--budget", type=float, default=0.1, help="the review budget, a share of train (0.1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    saved = torch.load(args.backbone, map_location="cpu", weights_only=True)
    arch, size = saved["config"]["arch"], saved["config"]["size"]
    faces = load_faces(args.faces, size)
    (x, given, true), (x_val, given_val, _) = faces["train"], faces["val"]
    budget = max(1, round(args.budget * len(given)))
    device = pick_device()
    print(f"{len(given)} train ({int((given != true).sum())} wrong labels), {len(given_val)} val; {arch} {size} px, "
          f"{args.epochs} epochs, batch {args.batch_size}, {args.folds} folds; budget {budget}; backbone "
          f"{args.backbone} ({saved['config']['epochs']} SimCLR epochs); device {device}", flush=True)
    print("| seed | start | AUROC | AP | wrong in top budget | out-of-fold accuracy (true labels) | s |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    started, rows = time.monotonic(), []
    # Early stopping on the noisy val split as the job schedules it for this many train images.
    min_epochs, patience = noisy_val_schedule(len(given), args.batch_size, args.epochs,
                                              TrainConfig.early_stopping_patience)
    for seed in args.seeds:
        cfg = TrainConfig(arch=arch, size=size, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                          num_threads=args.threads, min_epochs=min_epochs, early_stopping_patience=patience)
        row = {"seed": seed}
        for start, init in (("scratch", None), ("ssl", saved)):
            t0 = time.monotonic()
            probs, loaded = out_of_fold(cfg, x, given, x_val, given_val, folds=args.folds, init=init, device=device)
            row[start] = {**queue_figures(probs, given, true, budget), "loaded": loaded,
                          "seconds": time.monotonic() - t0}
            f = row[start]
            print(f"| {seed} | {start} | {f['auroc']:.3f} | {f['ap']:.3f} | {f['wrong_in_top']} | "
                  f"{f['oof_accuracy']:.1%} | {f['seconds']:.0f} |", flush=True)
        rows.append(row)
    for key, unit in (("auroc", ""), ("wrong_in_top", " wrong labels"), ("oof_accuracy", "")):
        gains = [r["ssl"][key] - r["scratch"][key] for r in rows]
        each = ", ".join(f"{g:+d}" if isinstance(g, (int, np.integer)) else f"{g:+.3f}" for g in gains)
        print(f"SSL start - scratch, {key}: {each}{unit} (mean {np.mean(gains):+.3f})", flush=True)
    report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "budget": budget,
              "rows": rows, "total_seconds": time.monotonic() - started}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
