"""When does noise-robust training pay? The cleaning benchmark's classifier, trained on its noisy labels with and
without a robust method, at the CPU profile's epochs and at more, measured against the truth (issue #17).

Noise-robust methods such as EAC work against memorisation: a network that has learnt the easy, mostly right
labels goes on to fit the wrong ones, and its test accuracy falls. They have nothing to fix while a network is
still in its early-learning phase. This script says which phase a configuration is in, per run:

- fit to wrong labels: the share of wrong-labelled train images the model predicts as their *wrong* given label
  (memorisation); beside it the share it predicts as their true label;
- train accuracy on the given labels, and on the right-labelled train images;
- test accuracy (the test split is noise-free).

Reads a folder of make_synthetic_faces (labels.csv and truth.csv: the benchmark writes one under --out/faces) and
trains with training.engine.fit, as the train_classifier job does, one torch process, no Django:

    python -m benchmarks.robust_regime --faces OUT/faces --runs ce:16 eac:16 ce:48 eac:48 oracle:48
"""
import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.engine import fit, pick_device, predict_proba
from training.labels import CODE

# The cleaning benchmark's CPU profile (curation/cleaning_bench/plan.py), as its runs store it.
CPU_PROFILE = dict(arch="small_cnn", size=48, batch_size=64, lr=0.002, label_smoothing=0.05, augment=True,
                   early_stopping_patience=5, monitor="val_acc")


def load_faces(folder, size):
    """{split: (uint8 images (N, S, S, 3), given labels, true labels)} of a make_synthetic_faces folder."""
    from PIL import Image

    folder = Path(folder)
    with open(folder / "truth.csv", newline="") as fh:
        truth = {r["path"]: CODE[r["true_label"]] for r in csv.DictReader(fh)}
    rows = {"train": [], "val": [], "test": []}
    with open(folder / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["split"]].append((r["path"], CODE[r["label"]], truth[r["path"]]))
    out = {}
    for split, items in rows.items():
        images = np.stack([np.asarray(Image.open(folder / p).convert("RGB").resize((size, size), Image.BILINEAR))
                           for p, _, _ in items])
        out[split] = (images, np.array([g for _, g, _ in items]), np.array([t for _, _, t in items]))
    return out


def parse_run(spec):
    """"eac:48" -> ("eac", 48); "eac@1:48" sets EAC's lambda to 1; "oracle:48" trains on the true labels."""
    name, epochs = spec.split(":")
    method, _, weight = name.partition("@")
    return method, int(epochs), float(weight) if weight else None


def measure(faces, method, epochs, weight, seed, threads):
    x_tr, given_tr, true_tr = faces["train"]
    x_val, given_val, true_val = faces["val"]
    x_te, _, true_te = faces["test"]
    oracle = method == "oracle"
    robust = "none" if oracle else ("none" if method == "ce" else method)
    extra = {"eac_lambda": weight} if weight is not None and robust == "eac" else {}
    cfg = TrainConfig(**CPU_PROFILE, epochs=epochs, robust=robust, seed=seed, num_threads=threads, **extra)
    y_tr, y_val = (true_tr, true_val) if oracle else (given_tr, given_val)
    device = pick_device()
    t0 = time.monotonic()
    result = fit(cfg, x_tr, y_tr, x_val, y_val, device=device)
    seconds = time.monotonic() - t0
    pred_tr = predict_proba(result.model, x_tr, batch_size=256, device=device, mode="stream").argmax(1)
    pred_te = predict_proba(result.model, x_te, batch_size=256, device=device, mode="stream").argmax(1)
    wrong = given_tr != true_tr
    last = result.history[-1]
    kept = next((h for h in result.history if h["epoch"] == result.best_epoch), result.history[-1])
    return {"run": f"{method}{'' if weight is None else '@' + str(weight)}:{epochs}", "epochs": epochs,
            "best_epoch": result.best_epoch, "seconds": round(seconds, 1),
            "train_acc_given": float((pred_tr == given_tr).mean()),
            "train_acc_right_labels": float((pred_tr[~wrong] == given_tr[~wrong]).mean()),
            "fit_to_wrong_labels": float((pred_tr[wrong] == given_tr[wrong]).mean()),
            "wrong_labels_predicted_true": float((pred_tr[wrong] == true_tr[wrong]).mean()),
            "last_epoch_train_acc": last.get("train_acc"), "val_acc_given": kept["val_acc"],
            "test_accuracy": float((pred_te == true_te).mean())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", required=True, help="a make_synthetic_faces folder (labels.csv, truth.csv)")
    parser.add_argument("--runs", nargs="+", default=["ce:16", "eac:16", "ce:48", "eac:48", "oracle:48"],
                        help="METHOD[@EAC_LAMBDA]:EPOCHS, METHOD one of ce, eac, gce, bootstrap, oracle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: one a core)")
    parser.add_argument("--out", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    faces = load_faces(args.faces, CPU_PROFILE["size"])
    wrong = faces["train"][1] != faces["train"][2]
    print(f"{len(wrong)} train images, {int(wrong.sum())} wrong labels ({wrong.mean():.1%}); "
          f"{len(faces['test'][0])} test images")
    rows = []
    print("| run | best epoch | train acc (given) | right labels fitted | wrong labels fitted (memorised) | wrong "
          "labels predicted true | val acc (given, kept epoch) | test accuracy | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in args.runs:
        method, epochs, weight = parse_run(spec)
        row = measure(faces, method, epochs, weight, args.seed, args.threads)
        rows.append(row)
        print(f"| {row['run']} | {row['best_epoch']} | {row['train_acc_given']:.3f} | "
              f"{row['train_acc_right_labels']:.3f} | {row['fit_to_wrong_labels']:.3f} | "
              f"{row['wrong_labels_predicted_true']:.3f} | {row['val_acc_given']:.3f} | "
              f"{row['test_accuracy']:.3f} | {row['seconds']} |",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
