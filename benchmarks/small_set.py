"""Small datasets train reliably (issue 39): a few thousand synthetic faces with uniform label noise, several seeds
of the baseline (given labels) and of a reviewed retrain (a share of the train split reviewed, reviewers right),
each under today's (old) early stopping and under the new one for a noisy val split (training.config.
noisy_val_schedule: a minimum of epochs and a patience that scale with the train split), in the same run. Prints
per arm the mean, the spread (sample sd) and the worst test accuracy (noise-free test split), the kept epochs, and
which runs the collapse warning (curation/classifier/collapse.py) flags; asserts nothing.

Trains with training.engine.fit as the train_classifier job does, one torch process, no Django:

    python -m benchmarks.small_set --n 3000 --noise 0.25 --seeds 5 --epochs 16
"""
import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.robust_regime import load_faces
from curation.classifier.collapse import collapse_signs
from training.config import TrainConfig, noisy_val_schedule
from training.engine import fit, pick_device, predict_proba
from training.synthetic_faces import make_synthetic_faces

# The setting: small_cnn at 48 px, the cleaning benchmark's CPU profile otherwise.
PROFILE = dict(arch="small_cnn", size=48, batch_size=64, lr=0.002, label_smoothing=0.05, augment=True,
               monitor="val_acc")


def run_one(faces, labels, *, seed, epochs, schedule, threads):
    x_tr, _, _ = faces["train"]
    x_val, given_val, _ = faces["val"]
    x_te, _, true_te = faces["test"]
    if schedule == "old":
        min_epochs, patience = 0, 5
    else:
        min_epochs, patience = noisy_val_schedule(len(x_tr), PROFILE["batch_size"], epochs)
    cfg = TrainConfig(**PROFILE, epochs=epochs, seed=seed, num_threads=threads, min_epochs=min_epochs,
                      early_stopping_patience=patience)
    device = pick_device()
    t0 = time.monotonic()
    result = fit(cfg, x_tr, labels, x_val, given_val, device=device)
    pred = predict_proba(result.model, x_te, batch_size=256, device=device, mode="stream").argmax(1)
    counts = np.bincount(labels, minlength=cfg.num_classes)
    return {"acc": float((pred == true_te).mean()), "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "history": result.history, "seconds": time.monotonic() - t0, "epochs": epochs,
            "majority_share": float(counts.max() / counts.sum()), "min_epochs": min_epochs, "patience": patience}


def flagged(row, parent):
    """The collapse warning's signs for a benchmark run (parent: the same seed's baseline under the same schedule)."""
    def as_run(r, pk):
        return SimpleNamespace(pk=pk, test_metrics={"accuracy": r["acc"]}, history=r["history"],
                               best_epoch=r["best_epoch"], config={"epochs": r["epochs"], "num_classes": 8},
                               selection={"majority_share": r["majority_share"], "validation": {"on": "noisy"}},
                               derived_from=None)
    return collapse_signs(as_run(row, 2), parent=as_run(parent, 1) if parent is not None else None)


def summary(rows):
    acc = [r["acc"] for r in rows]
    return (statistics.fmean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0, min(acc))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--noise", type=float, default=0.25)
    parser.add_argument("--difficulty", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--reviewed", type=float, default=0.10, help="share of the train split reviewed (right)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--faces", help="an existing make_synthetic_faces folder (else one is made in a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.faces) if args.faces else Path(tmp) / "faces"
        if not args.faces:
            t0 = time.monotonic()
            make_synthetic_faces(folder, n=args.n, size=PROFILE["size"], noise=args.noise, seed=0,
                                 difficulty=args.difficulty)
            print(f"made {args.n} faces (noise {args.noise}, difficulty {args.difficulty}) in "
                  f"{time.monotonic() - t0:.0f} s")
        faces = load_faces(folder, PROFILE["size"])
    _, given, true = faces["train"]
    rng = np.random.default_rng(0)
    reviewed = rng.permutation(len(given))[:math.ceil(args.reviewed * len(given))]
    fixed = given.copy()
    fixed[reviewed] = true[reviewed]  # reviewers right
    print(f"{len(given)} train ({(given != true).mean():.1%} wrong), {len(faces['val'][0])} val (noisy), "
          f"{len(faces['test'][0])} test (true labels); reviewed {len(reviewed)} train images, fixing "
          f"{int((given[reviewed] != true[reviewed]).sum())} labels; {args.seeds} seeds, {args.epochs} epochs at most")
    print(f"new schedule on this train split: min_epochs, patience = "
          f"{noisy_val_schedule(len(given), PROFILE['batch_size'], args.epochs)} (old: 0, 5)")
    arms = {}
    print("| schedule | arm | seed | test acc | kept epoch | epochs run | collapse signs | s |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):  # seed by seed, both schedules: a run cut short still compares them
        for schedule in ("old", "new"):
            base = run_one(faces, given, seed=seed, epochs=args.epochs, schedule=schedule, threads=args.threads)
            rev = run_one(faces, fixed, seed=seed, epochs=args.epochs, schedule=schedule, threads=args.threads)
            for arm, row, parent in (("baseline", base, None), ("reviewed", rev, base)):
                row["signs"] = flagged(row, parent)
                arms.setdefault((schedule, arm), []).append(row)
                print(f"| {schedule} | {arm} | {seed} | {row['acc']:.4f} | {row['best_epoch']} | {row['epochs_run']} "
                      f"| {'; '.join(row['signs']) or '-'} | {row['seconds']:.0f} |", flush=True)
    print()
    print("| schedule | arm | mean | spread (sd) | worst | flagged | reviewed - baseline, per seed |")
    print("|---|---|---|---|---|---|---|")
    for (schedule, arm), rows in arms.items():
        mean, sd, worst = summary(rows)
        gains = ""
        if arm == "reviewed":
            gains = ", ".join(f"{(r['acc'] - b['acc']) * 100:+.1f}" for r, b in zip(rows, arms[(schedule, "baseline")]))
        print(f"| {schedule} | {arm} | {mean:.4f} | {sd:.4f} | {worst:.4f} | "
              f"{sum(bool(r['signs']) for r in rows)}/{len(rows)} | {gains} |")
    for schedule in ("old", "new"):
        rev, base = arms[(schedule, "reviewed")], arms[(schedule, "baseline")]
        drops = [(r["acc"] - b["acc"]) * 100 for r, b in zip(rev, base)]
        (rm, rs, _), (bm, bs, _) = summary(rev), summary(base)
        collapsed = [i for i, d in enumerate(drops) if d < -2]
        print(f"{schedule}: reviewed mean - baseline mean {(rm - bm) * 100:+.1f} points (spreads {rs * 100:.1f} / "
              f"{bs * 100:.1f}); reviewed runs >2 points below their baseline: {len(collapsed)} "
              f"(flagged {sum(bool(rev[i]['signs']) for i in collapsed)} of them)")


if __name__ == "__main__":
    main()
