"""How hard the synthetic faces are, and what label noise costs: train each architecture on the clean (true)
labels and on the noisy (given) labels of the same synthetic dataset, and score both on its noise-free test split.
Prints a table and the per-class confusion matrices; asserts nothing.

    python -m benchmarks.accuracy --n 8000 --size 64 --noise 0.2 --archs seed_cnn resnet18
"""
import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from training.cache import decode_images
from training.config import TrainConfig
from training.engine import fit, predict_proba
from training.placement import pick_device, to_device_u8
from training.labels import CLASSES, CODE
from training.metrics import classification_report
from training.synthetic_faces import make_synthetic_faces


def load_synthetic(out, size):
    """(images, given labels, true labels, split names) of a make_synthetic_faces folder."""
    with open(out / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    with open(out / "truth.csv") as fh:
        truth = {r["path"]: r for r in csv.DictReader(fh)}
    images = decode_images([out / r["path"] for r in rows], size)
    given = np.array([CODE[r["label"]] for r in rows])
    true = np.array([CODE[truth[r["path"]]["true_label"]] for r in rows])
    split = np.array([r["split"] for r in rows])
    return images, given, true, split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=None)
    parser.add_argument("--archs", nargs="+", default=["seed_cnn", "resnet18"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=1, help="processes for generating the faces")
    parser.add_argument("--data", type=Path, default=None, help="reuse or write the dataset here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    out = args.data or Path(tempfile.mkdtemp(prefix="synthetic_"))
    if not (out / "labels.csv").exists():
        extra = {} if args.difficulty is None else {"difficulty": args.difficulty}
        made = make_synthetic_faces(out, n=args.n, size=args.size, noise=args.noise, seed=args.seed,
                                    workers=args.workers, **extra)
        print(f"generated {args.n} faces in {made['seconds']:.1f} s; noise rate {made['noise_rate']:.3f}")
    images, given, true, split = load_synthetic(out, args.size)
    device = pick_device()
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    assert (given[te] == true[te]).all(), "the test split must carry no noise"
    results = []
    for arch in args.archs:
        for labels_name, labels in (("clean", true), ("noisy", given)):
            cfg = TrainConfig(arch=arch, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, seed=args.seed, early_stopping_patience=8)
            t0 = time.perf_counter()
            result = fit(cfg, images[tr], labels[tr], images[va], labels[va], device=device)
            seconds = time.perf_counter() - t0
            probs = predict_proba(result.model, to_device_u8(images[te], device), batch_size=512, device=device)
            report = classification_report(true[te], probs.argmax(1), len(CLASSES))
            results.append({"arch": arch, "labels": labels_name, "seconds": round(seconds, 1),
                            "best_epoch": result.best_epoch, "epochs_run": len(result.history), **report})
            print(f"{arch:<9} {labels_name} labels: test accuracy {report['accuracy']:.4f}, macro F1 "
                  f"{report['macro_f1']:.4f} (best epoch {result.best_epoch}/{len(result.history)}, {seconds:.0f} s)",
                  flush=True)
    print(f"\n{args.n} faces, {args.size} px, noise {args.noise}, device {device}; test split {int(te.sum())} faces")
    for r in results:
        print(f"\n{r['arch']} on {r['labels']} labels: accuracy {r['accuracy']:.4f}; confusion (rows true, cols predicted)")
        print("          " + " ".join(f"{c[:5]:>5}" for c in CLASSES) + "  recall")
        for name, row, rec in zip(CLASSES, r["confusion"], r["recall"]):
            print(f"{name:<9} " + " ".join(f"{v:5d}" for v in row) + f"  {rec:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
