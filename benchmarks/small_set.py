"""Small datasets train reliably (issue 39): a few thousand synthetic faces with uniform or annotator label noise,
several seeds of the baseline (given labels) and of a reviewed retrain (a share of the train split reviewed,
reviewers right), under named settings in the same run: "today" (today's defaults, with early stopping for a noisy
val split: training.config.noisy_val_schedule), "small" (the defaults that fit the train split's size:
training.config.size_defaults), "old" (patience 5, no minimum), or a sweep's key=value overrides. Prints per
setting and arm the mean, the spread (sample sd) and the worst test accuracy (noise-free test split), the kept
epochs, and which runs the collapse warning (curation/classifier/collapse.py) flags; asserts nothing.

Trains with training.engine.fit as the train_classifier job does, one torch process, no Django:

    python -m benchmarks.small_set --n 3000 --noise 0.25 --seeds 5 --epochs 16 --settings today,small
    python -m benchmarks.small_set --seeds 3 --arms baseline --settings today,batch_size=32,lr=0.004   # a sweep
"""
import argparse
import re
import math
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.robust_regime import load_faces
from curation.classifier.collapse import collapse_signs
from training.config import TrainConfig, noisy_val_schedule, size_defaults
from training.engine import fit, predict_proba
from training.placement import pick_device
from training.synthetic_faces import NOISE_MODELS, make_synthetic_faces

# The setting: small_cnn at 48 px, the cleaning benchmark's CPU profile otherwise.
PROFILE = dict(arch="small_cnn", size=48, batch_size=64, lr=0.002, label_smoothing=0.05, augment=True,
               monitor="val_acc")


# Named settings a run can take: TrainConfig overrides on top of PROFILE; "schedule": "old" (patience 5, no minimum:
# before issue 39) or "new" (training.config.noisy_val_schedule on the train split's size); "by_size": the defaults
# that fit the train split's size (training.config.size_defaults, what a run whose params leave them unset takes).
SETTINGS = {
    "old": {"schedule": "old"},
    "today": {"schedule": "new"},
    "small": {"schedule": "new", "by_size": True},
}


def parse_setting(spec):
    """"today", "old", or key=value pairs joined by "+" on top of today (e.g. "weight_decay=0.05+epochs=32")."""
    if spec in SETTINGS:
        return dict(SETTINGS[spec])
    setting = {"schedule": "new"}
    for pair in spec.split("+"):
        key, _, value = pair.partition("=")
        if key == "schedule":
            setting[key] = value
            continue
        kind = type(getattr(TrainConfig(), key))
        setting[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return setting


def run_one(faces, labels, *, seed, epochs, schedule="new", threads, overrides=None, log=None):
    overrides = dict(overrides or {})
    schedule = overrides.pop("schedule", schedule)
    x_tr, _, _ = faces["train"]
    if overrides.pop("by_size", False):
        overrides = {**size_defaults(len(x_tr)), **overrides}
    epochs = overrides.pop("epochs", epochs)
    x_val, given_val, _ = faces["val"]
    x_te, _, true_te = faces["test"]
    profile = {**PROFILE, **overrides}
    if schedule == "old":
        min_epochs, patience = 0, 5
    else:
        min_epochs, patience = noisy_val_schedule(len(x_tr), profile["batch_size"], epochs)
    cfg = TrainConfig(**profile, epochs=epochs, seed=seed, num_threads=threads, min_epochs=min_epochs,
                      early_stopping_patience=patience)
    device = pick_device()
    t0 = time.monotonic()

    def on_epoch(ck):
        if log is not None:
            h = ck["history"][-1]
            log(f"    epoch {h['epoch']}: train {h['train_acc']:.3f} val {h['val_acc']:.3f} "
                f"({time.monotonic() - t0:.0f} s)")

    result = fit(cfg, x_tr, labels, x_val, given_val, device=device, on_epoch=on_epoch)
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
    parser.add_argument("--noise-model", choices=NOISE_MODELS, default="uniform")
    parser.add_argument("--difficulty", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--settings", default="today,small",
                        help="comma-separated: old, today, small (training.config.small_split_defaults), or "
                             "key=value+key=value on top of today (a sweep)")
    parser.add_argument("--arms", default="baseline,reviewed", help="baseline and/or reviewed")
    parser.add_argument("--reviewed", type=float, default=0.10, help="share of the train split reviewed (right)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--faces", help="an existing make_synthetic_faces folder (else one is made in a temp dir)")
    parser.add_argument("--verbose", action="store_true", help="print every epoch")
    parser.add_argument("--from-logs", nargs="+", metavar="LOG",
                        help="train nothing: report the runs in these --verbose logs (one benchmark split over "
                             "several processes), with --faces for the labels")
    args = parser.parse_args(argv)
    settings = {name: parse_setting(name) for name in args.settings.split(",")}
    arm_names = args.arms.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.faces) if args.faces else Path(tmp) / "faces"
        if not args.faces:
            t0 = time.monotonic()
            make_synthetic_faces(folder, n=args.n, size=PROFILE["size"], noise=args.noise, seed=0,
                                 difficulty=args.difficulty, noise_model=args.noise_model)
            print(f"made {args.n} faces ({args.noise_model} noise {args.noise}, difficulty {args.difficulty}) in "
                  f"{time.monotonic() - t0:.0f} s")
        faces = load_faces(folder, PROFILE["size"])
    _, given, true = faces["train"]
    rng = np.random.default_rng(0)
    reviewed = rng.permutation(len(given))[:math.ceil(args.reviewed * len(given))]
    fixed = given.copy()
    fixed[reviewed] = true[reviewed]  # reviewers right
    print(f"{len(given)} train ({(given != true).mean():.1%} wrong), {len(faces['val'][0])} val (noisy), "
          f"{len(faces['test'][0])} test (true labels); reviewed {len(reviewed)} train images, fixing "
          f"{int((given[reviewed] != true[reviewed]).sum())} labels; seeds {args.first_seed}-"
          f"{args.first_seed + args.seeds - 1}, {args.epochs} epochs unless a setting says")
    for name, setting in settings.items():
        print(f"  {name}: {setting}")
    if args.from_logs:
        share = {arm: float(np.bincount(labels, minlength=8).max() / len(labels))
                 for arm, labels in (("baseline", given), ("reviewed", fixed))}
        report(rows_from_logs(args.from_logs, args.epochs, share))
        return
    log = (lambda line: print(line, flush=True)) if args.verbose else None
    arms = {}
    print("| setting | arm | seed | test acc | kept epoch | epochs run | collapse signs | s |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(args.first_seed, args.first_seed + args.seeds):  # seed by seed: a run cut short still compares
        for name, setting in settings.items():
            base = None
            for arm in arm_names:
                labels = given if arm == "baseline" else fixed
                row = run_one(faces, labels, seed=seed, epochs=args.epochs, threads=args.threads,
                              overrides=setting, log=log)
                parent = base if arm == "reviewed" else None
                base = row if arm == "baseline" else base
                row["signs"], row["seed"] = flagged(row, parent), seed
                arms.setdefault((name, arm), []).append(row)
                print(f"| {name} | {arm} | {seed} | {row['acc']:.4f} | {row['best_epoch']} | {row['epochs_run']} "
                      f"| {'; '.join(row['signs']) or '-'} | {row['seconds']:.0f} |", flush=True)
    report(arms)


def report(arms):
    """The per-setting, per-arm table and the issue's goals, for {(setting, arm): [rows, seed by seed]}."""
    print()
    print("| setting | arm | runs | mean | spread (sd) | worst | kept epochs | flagged | reviewed - baseline, per seed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, arm), rows in arms.items():
        mean, sd, worst = summary(rows)
        gains = ""
        if arm == "reviewed" and (name, "baseline") in arms:
            base = {b["seed"]: b for b in arms[(name, "baseline")]}
            gains = ", ".join(f"{(r['acc'] - base[r['seed']]['acc']) * 100:+.1f}" for r in rows)
        print(f"| {name} | {arm} | {len(rows)} | {mean:.4f} | {sd:.4f} | {worst:.4f} | "
              f"{', '.join(str(r['best_epoch']) for r in rows)} | {sum(bool(r['signs']) for r in rows)}/{len(rows)} "
              f"| {gains} |")
    for name in dict.fromkeys(name for name, _ in arms):
        if (name, "reviewed") not in arms or (name, "baseline") not in arms:
            continue
        rev, by_seed = arms[(name, "reviewed")], {b["seed"]: b for b in arms[(name, "baseline")]}
        base = [by_seed[r["seed"]] for r in rev]  # the seeds both arms ran
        drops = [(r["acc"] - b["acc"]) * 100 for r, b in zip(rev, base)]
        (rm, rs, _), (bm, bs, _) = summary(rev), summary(base)
        below = [i for i, d in enumerate(drops) if d < -2]
        collapses = [r for r in base + rev if r["acc"] < 0.5 * bm or (r["best_epoch"] or 0) * 4 <= r["epochs"]]
        print(f"{name}, {len(rev)} seeds with both arms: reviewed mean - baseline mean {(rm - bm) * 100:+.1f} points (spreads {rs * 100:.1f} / "
              f"{bs * 100:.1f}); reviewed runs >2 points below their baseline: {len(below)} "
              f"(flagged {sum(bool(rev[i]['signs']) for i in below)} of them); collapses (kept epoch in the first "
              f"quarter or under half the baseline mean): {len(collapses)}, flagged "
              f"{sum(bool(r['signs']) for r in collapses)}")


ROW = re.compile(r"^\| (?P<setting>[^|]+) \| (?P<arm>baseline|reviewed) \| (?P<seed>\d+) \| (?P<acc>[\d.]+) \| "
                 r"(?P<best>\d+) \| (?P<run>\d+) \|")
EPOCH = re.compile(r"^ +epoch (?P<epoch>\d+): train (?P<train>[\d.]+) val (?P<val>[\d.]+)")


def rows_from_logs(paths, epochs, majority_share):
    """{(setting, arm): rows by seed} read back from --verbose logs (runs split over several processes)."""
    found = {}
    for path in paths:
        history = []
        for line in Path(path).read_text().splitlines():
            if m := EPOCH.match(line):
                history.append({"epoch": int(m["epoch"]), "train_acc": float(m["train"]), "val_acc": float(m["val"])})
            elif (m := ROW.match(line)) and m["setting"] != "setting":
                found[(m["setting"].strip(), m["arm"], int(m["seed"]))] = {
                    "acc": float(m["acc"]), "best_epoch": int(m["best"]), "epochs_run": int(m["run"]),
                    "history": history, "epochs": epochs, "majority_share": majority_share[m["arm"]]}
                history = []
    arms = {}
    for (setting, arm, seed), row in sorted(found.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        parent = found.get((setting, "baseline", seed)) if arm == "reviewed" else None
        if arm == "reviewed" and parent is None:
            continue  # no baseline of the same seed to compare with
        row["signs"], row["seed"] = flagged(row, parent), seed
        arms.setdefault((setting, arm), []).append(row)
    # a baseline without its reviewed run still counts for the baseline's figures
    return arms


if __name__ == "__main__":
    main()
