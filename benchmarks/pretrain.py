"""What a pretrained start buys (`train_classifier --init`): the product pretrains its own backbone on a larger
synthetic set (other people's faces, its own seed), then trains on a small noisy target set twice, from scratch and
from those weights, with the same seed, epochs and learning rate; both are scored on the target's clean test
split. Prints a table (and JSON with --json); asserts nothing.

    python -m benchmarks.pretrain --pretrain-n 6000 --target-n 1000 --epochs 10

The published FER results start from ImageNet or face-recognition weights; nothing may be downloaded here, so the
pretraining set is synthetic too. Full-size runs (resnet18 at 64 px, more faces) are for a GPU.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy import load_synthetic
from training.config import TrainConfig
from training.engine import fit, predict_proba
from training.placement import pick_device, to_device_u8
from training.synthetic_faces import make_synthetic_faces


def _config(args, epochs, seed):
    return TrainConfig(arch=args.arch, size=args.size, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=seed, num_threads=args.threads, early_stopping_patience=0)


def _accuracy(model, x, y, device):
    probs = predict_proba(model, to_device_u8(x, device), batch_size=256, device=device)
    return float((probs.argmax(1) == y).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrain-n", type=int, default=6000, help="faces of the pretraining set")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--target-n", type=int, default=1000, help="faces of the small target set (all splits)")
    parser.add_argument("--noise", type=float, default=0.2, help="wrong train labels in the target set")
    parser.add_argument("--epochs", type=int, default=10, help="target training epochs, both starts")
    parser.add_argument("--seeds", type=int, default=2, help="target runs per start, one a seed")
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--difficulty", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: one a core)")
    parser.add_argument("--data", type=Path, default=None, help="write the faces here (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    root = args.data or Path(tempfile.mkdtemp(prefix="pretrain_"))
    device = pick_device()
    started = time.perf_counter()
    pre, target = root / "pretrain", root / "target"
    if not (pre / "labels.csv").exists():  # other faces: another seed draws other people
        make_synthetic_faces(pre, n=args.pretrain_n, size=args.size, noise=0.0, seed=101, difficulty=args.difficulty)
    if not (target / "labels.csv").exists():
        make_synthetic_faces(target, n=args.target_n, size=args.size, noise=args.noise, seed=202,
                             difficulty=args.difficulty)
    x_pre, y_pre, _, split_pre = load_synthetic(pre, args.size)
    x, given, true, split = load_synthetic(target, args.size)
    train, val, test = (split == "train"), (split == "val"), (split == "test")

    t0 = time.perf_counter()
    pretrained = fit(_config(args, args.pretrain_epochs, 0), x_pre[split_pre != "test"], y_pre[split_pre != "test"],
                     x_pre[split_pre == "test"], y_pre[split_pre == "test"], device=device)
    pretrain_seconds = time.perf_counter() - t0
    pretrain_acc = _accuracy(pretrained.model, x_pre[split_pre == "test"], y_pre[split_pre == "test"], device)
    weights = {k: v.detach().cpu() for k, v in pretrained.model.state_dict().items()}

    rows = {}
    for start, init in (("scratch", None), ("pretrained", weights)):
        accs, seconds = [], 0.0
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            result = fit(_config(args, args.epochs, seed), x[train], given[train], x[val], given[val], device=device,
                         init=init)
            seconds += time.perf_counter() - t0
            accs.append(_accuracy(result.model, x[test], true[test], device))
        rows[start] = {"accuracy": float(np.mean(accs)), "sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                       "seeds": accs, "seconds": seconds}
    gain = rows["pretrained"]["accuracy"] - rows["scratch"]["accuracy"]
    report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "pretrain": {"faces": int((split_pre != "test").sum()), "test_accuracy": pretrain_acc,
                           "seconds": pretrain_seconds},
              "target": {"train": int(train.sum()), "test": int(test.sum())}, "runs": rows,
              "gain": gain, "total_seconds": time.perf_counter() - started, "device": str(device)}

    print(f"pretraining: {args.arch} on {report['pretrain']['faces']} synthetic faces (seed 101), "
          f"{args.pretrain_epochs} epochs, {pretrain_seconds:.0f} s; its own test accuracy {pretrain_acc:.3f}")
    print(f"target: {report['target']['train']} train faces (seed 202, {args.noise:.0%} wrong labels), "
          f"{report['target']['test']} clean test faces; {args.epochs} epochs, {args.seeds} seed(s) a start")
    print(f"{'start':<12} {'test accuracy':>16} {'train s':>8}")
    for start, row in rows.items():
        sd = f" +- {row['sd']:.3f}" if row["sd"] is not None else ""
        print(f"{start:<12} {row['accuracy']:>9.3f}{sd:<7} {row['seconds']:>8.0f}")
    print(f"the pretrained start: {gain:+.3f} test accuracy against scratch, same epochs, seeds and data")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
