"""Does a CycleGAN between two emotions translate them? Measured on synthetic faces, no Django.

A judge classifier (small_cnn) is trained on the TRUE labels of the train split, so it is as good as the data
allows; its test accuracy and its per-class rates of calling faces A or B are printed. Then a CycleGAN A<->B
trains on the train-split faces whose true label is A / B, and after every epoch, on held-out faces (val + test
splits) of A and of B, the product's instrument (gan.quality.quality) reports per direction: how often the judge
calls the generated images the target emotion, how often it calls the untouched sources so (the baseline), and
mean SSIM(source, generated). Writes OUT/quality.json (settings, judge, per-epoch figures, seconds per epoch) and
OUT/samples.png (gan.cyclegan.sample_grid of held-out faces after the last epoch). Prints figures; asserts nothing.

    python -m benchmarks.gan_quality --difficulty 0.3 --size 48 --epochs 6 --epochs-decay 6 --lr 5e-4 --out var/gan_quality
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.cyclegan import CycleGAN, make_config, sample_grid
from gan.quality import quality
from benchmarks.accuracy import load_synthetic
from training.config import TrainConfig
from training.engine import best_weights_checkpoint, fit, load_model, predict_proba
from training.placement import to_device_u8
from training.labels import CLASSES, CODE
from training.synthetic_faces import DEFAULT_DIFFICULTY, make_synthetic_faces


def train_judge(images, true, split, args, device):
    """small_cnn on the true labels of the train split (val for early stopping), kept in the data folder and
    reused by later runs at the same size; returns classify and a summary (test accuracy, per-class rates)."""
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    cfg = TrainConfig(arch="small_cnn", size=args.size, epochs=args.judge_epochs, batch_size=64, lr=2e-3,
                      seed=args.seed, early_stopping_patience=5)
    path = args.data / f"judge_{args.size}px_{args.judge_epochs}ep_seed{args.seed}.pt"
    t0 = time.perf_counter()
    if path.exists():
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        print(f"judge: reusing {path}")
    else:
        checkpoint = best_weights_checkpoint(cfg, fit(cfg, images[tr], true[tr], images[va], true[va], device=device))
        torch.save(checkpoint, path)
    model, _ = load_model(checkpoint, device)

    def classify(images_u8):
        return predict_proba(model, to_device_u8(images_u8, device), batch_size=256, device=device)

    predicted = classify(images[te]).argmax(1)
    summary = {"accuracy": float((predicted == true[te]).mean()), "seconds": round(time.perf_counter() - t0, 1),
               "epochs_run": len(checkpoint["history"]), "best_epoch": checkpoint["best_epoch"],
               "called": {CLASSES[c]: {CLASSES[k]: float((predicted[true[te] == c] == k).mean()) for k in args.codes}
                          for c in range(len(CLASSES))}}
    print(f"judge small_cnn on true labels, {args.size} px: test accuracy {summary['accuracy']:.3f} (best epoch "
          f"{summary['best_epoch']}/{summary['epochs_run']}); rate at which it calls test faces of each true class:")
    print("  true class  " + "  ".join(f"called {CLASSES[k]:<7}" for k in args.codes))
    for name, rates in summary["called"].items():
        print(f"  {name:<10}  " + "  ".join(f"{rates[CLASSES[k]]:>14.3f}" for k in args.codes))
    return classify, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="reuse or write the synthetic faces here")
    parser.add_argument("--n", type=int, default=4000, help="faces to generate (all eight emotions)")
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY)
    parser.add_argument("--pair", nargs=2, default=["happy", "sad"])
    parser.add_argument("--size", type=int, default=48, help="px of the judge and the CycleGAN")
    parser.add_argument("--profile", default="cpu", choices=["cpu", "full"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--epochs-decay", type=int, default=None)
    parser.add_argument("--ngf", type=int, default=None)
    parser.add_argument("--ndf", type=int, default=None)
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--upsample", choices=["deconv", "resize"], default=None)
    parser.add_argument("--judge-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("var/gan_quality"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    a, b = args.codes = [CODE[p] for p in args.pair]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    data = args.data = args.data or Path(tempfile.mkdtemp(prefix="synthetic_"))
    if not (data / "labels.csv").exists():
        made = make_synthetic_faces(data, n=args.n, size=max(64, args.size), seed=args.seed,
                                    difficulty=args.difficulty)
        (data / "made.json").write_text(json.dumps(made))
        print(f"generated {args.n} faces (difficulty {args.difficulty}) in {data} in {made['seconds']:.0f} s")
    if (data / "made.json").exists():  # a reused folder: report what it holds, not what the flags say
        args.n, args.difficulty = (json.loads((data / "made.json").read_text())[k] for k in ("n", "difficulty"))
    images, _, true, split = load_synthetic(data, args.size)
    classify, judge = train_judge(images, true, split, args, device)

    cfg = make_config(args.profile, size=args.size, epochs=args.epochs, epochs_decay=args.epochs_decay, ngf=args.ngf,
                      ndf=args.ndf, n_blocks=args.blocks, batch_size=args.batch_size, lr=args.lr,
                      upsample=args.upsample, seed=args.seed)
    train, held = split == "train", split != "train"
    A, B = images[train & (true == a)], images[train & (true == b)]
    held_A, held_B = images[held & (true == a)], images[held & (true == b)]
    if min(len(A), len(B), len(held_A), len(held_B)) == 0:
        raise SystemExit(f"{args.n} faces leave no train or no held-out faces of {args.pair[0]} or {args.pair[1]} "
                         f"({len(A)} + {len(B)} train, {len(held_A)} + {len(held_B)} held out): raise --n")
    print(f"CycleGAN {args.pair[0]}<->{args.pair[1]}: {len(A)} + {len(B)} train faces, {len(held_A)} + {len(held_B)} "
          f"held out; {cfg.to_dict()}", flush=True)
    model = CycleGAN(cfg, device)
    A_dev, B_dev = (torch.from_numpy(x).permute(0, 3, 1, 2).to(device) for x in (A, B))
    epochs, total_seconds = [], 0.0
    for _ in range(cfg.total_epochs):
        t0 = time.perf_counter()
        losses = model.train_epoch(A_dev, B_dev)
        seconds = time.perf_counter() - t0
        total_seconds += seconds
        row = {**losses, "seconds": round(seconds, 2),
               "AB": quality(model, "AB", held_A, b, classify), "BA": quality(model, "BA", held_B, a, classify)}
        epochs.append(row)
        print(f"epoch {row['epoch']:>3} {seconds:5.1f} s  cycle {row['cycle']:.3f}  " + "  ".join(
            f"{x}->{y}: called {y} {q['target_rate']:.2f} (sources {q['source_target_rate']:.2f}), SSIM "
            f"{q['ssim_to_source']:.3f}" for (x, y), q in (((args.pair[0], args.pair[1]), row["AB"]),
                                                          ((args.pair[1], args.pair[0]), row["BA"]))), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    pick = np.random.default_rng(args.seed)
    k = min(8, len(held_A), len(held_B))  # 8 of each in the grid, fewer where a tiny run holds out fewer
    sample_a = torch.from_numpy(held_A[np.sort(pick.choice(len(held_A), k, replace=False))]).permute(0, 3, 1, 2)
    sample_b = torch.from_numpy(held_B[np.sort(pick.choice(len(held_B), k, replace=False))]).permute(0, 3, 1, 2)
    Image.fromarray(sample_grid(model, sample_a.to(device), sample_b.to(device))).save(args.out / "samples.png")
    report = {"data": str(data), "difficulty": args.difficulty, "n": args.n, "pair": args.pair,
              "device": str(device), "threads": torch.get_num_threads(), "config": cfg.to_dict(), "judge": judge,
              "gan_seconds": round(total_seconds, 1), "epochs": epochs}
    (args.out / "quality.json").write_text(json.dumps(report, indent=1))
    print(f"{cfg.total_epochs} epochs in {total_seconds:.0f} s ({total_seconds / cfg.total_epochs:.1f} s/epoch); "
          f"wrote {args.out / 'samples.png'} and {args.out / 'quality.json'}")
    return report


if __name__ == "__main__":
    main()
