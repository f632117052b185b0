"""What self-supervised pretraining on the dataset's own images buys (`pretrain_ssl`, then `train_classifier --init
ssl:ID`): synthetic faces with label noise (uniform, or --noise-model annotators); SimCLR or VICReg (--ssl-method;
training/ssl.py) on every train and val image, labels unread, the test split never seen; then, for each robust
method, the classifier trained twice with the same seed, epochs and learning rate, from scratch and from the
pretrained backbone, both scored on the noise-free test split with McNemar's exact paired test
(training/significance.py). Prints a row as each pair finishes (a run cut short still reports what it measured)
and JSON with --json; asserts nothing.

Before the pairs, what the backbone's embedding says by itself, against the same network at random weights
(`neighbour_readout`): the k-NN accuracy of the test faces among the train faces (the usual check of a
self-supervised embedding; read with the true labels and with the given ones), and how well an image's neighbours
disagreeing with its label finds the wrong train labels (AUROC), the signal a queue could take from it.

Trains with training.engine.fit and training.ssl.pretrain as the jobs do, one torch process, no Django:

    python -m benchmarks.ssl_start --n 3000 --ssl-epochs 12 --epochs 10 --robust none gce bootstrap eac
    python -m benchmarks.ssl_start --n 3000 --noise-model annotators --robust none elr dividemix@warmup=3

A method may carry its settings as benchmarks.robust_regime's runs do: dividemix@warmup=3,lambda_u=5.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.robust_regime import load_faces, parse_run
from training.config import EAC_ARCHS, TrainConfig
from training.engine import fit, predict_proba
from training.placement import pick_device
from training.significance import paired_test, wilson_interval
from training.ssl import SSLResult, backbone_file, build_backbone, embed, pretrain
from training.ssl_config import SSL_METHOD_NAMES, SSL_METHODS, SSLConfig
from training.synthetic_faces import NOISE_MODELS, make_synthetic_faces


def neighbour_readout(train, test, given, true, true_test, *, k=10):
    """Embeddings (N, D) of the train and test faces read through their k nearest neighbours (cosine), train
    against itself (an image not its own neighbour) and test against train: {"knn_true", "knn_given"}, the test
    faces' k-NN vote accuracy with the train faces' true or given labels; "wrong_auroc", the share of a train image's
    neighbours whose given label differs from its own as a score for its label being wrong (AUROC)."""
    from sklearn.metrics import roc_auc_score

    def unit(e):
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    train, test = unit(np.asarray(train, np.float64)), unit(np.asarray(test, np.float64))
    within = train @ train.T
    np.fill_diagonal(within, -np.inf)
    near_train = np.argsort(-within, axis=1, kind="stable")[:, :k]
    near_test = np.argsort(-(test @ train.T), axis=1, kind="stable")[:, :k]

    def vote(labels):
        return np.array([np.bincount(labels[row]).argmax() for row in near_test])

    wrong = given != true
    disagree = (given[near_train] != given[:, None]).mean(1)
    return {"k": k, "knn_true": float(np.mean(vote(true) == true_test)),
            "knn_given": float(np.mean(vote(given) == true_test)),
            "wrong_auroc": float(roc_auc_score(wrong, disagree)) if 0 < wrong.sum() < len(wrong) else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="faces, all splits")
    parser.add_argument("--noise", type=float, default=0.25, help="wrong train and val labels")
    parser.add_argument("--noise-model", choices=NOISE_MODELS, default="uniform",
                        help="how the wrong labels are chosen (training/synthetic_faces.py)")
    parser.add_argument("--difficulty", type=float, default=0.3)
    parser.add_argument("--faces-seed", type=int, default=0)
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--ssl-method", choices=SSL_METHODS, default=SSLConfig.method)
    parser.add_argument("--ssl-epochs", type=int, default=12)
    parser.add_argument("--ssl-batch-size", type=int, default=128)
    parser.add_argument("--ssl-lr", type=float, default=SSLConfig.lr)
    parser.add_argument("--temperature", type=float, default=SSLConfig.temperature)
    parser.add_argument("--epochs", type=int, default=10, help="classifier epochs, both starts (all run; the best "
                                                               "val accuracy is kept)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one pretraining and one pair per seed")
    parser.add_argument("--robust", nargs="+", default=["none", "gce", "bootstrap", "eac"],
                        help="METHOD[@VALUE|@KNOB=VALUE,...] each (none: plain cross-entropy)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--faces", type=Path, help="an existing make_synthetic_faces folder (else one is made)")
    parser.add_argument("--backbone", type=Path, help="a pretrained backbone file (with --seeds, one seed): read it "
                                                      "if it exists, else pretrain and save it there, so more robust "
                                                      "methods can be measured later from the same start")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        methods = [(spec, *parse_run(f"{spec}:{args.epochs}")[::2]) for spec in args.robust]
    except (KeyError, ValueError) as exc:
        parser.error(f"--robust: {exc}")
    if args.arch not in EAC_ARCHS and any(m == "eac" for _, m, _ in methods):
        parser.error(f"--robust eac needs {' or '.join(EAC_ARCHS)}")
    if args.backbone and len(args.seeds) > 1:
        parser.error("--backbone holds one seed's pretraining: give one --seeds")

    started = time.monotonic()
    method_name = SSL_METHOD_NAMES[args.ssl_method]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.faces or Path(tmp) / "faces"
        if not (folder / "labels.csv").exists():
            make_synthetic_faces(folder, n=args.n, size=args.size, noise=args.noise, seed=args.faces_seed,
                                 difficulty=args.difficulty, noise_model=args.noise_model)
        faces = load_faces(folder, args.size)
    x_tr, given_tr, true_tr = faces["train"]
    x_val, given_val, _ = faces["val"]
    x_te, _, true_te = faces["test"]
    unlabelled = np.concatenate([x_tr, x_val])  # every image but the test split's
    test_ids = np.arange(len(true_te))
    device = pick_device()
    print(f"{len(x_tr)} train ({(given_tr != true_tr).mean():.1%} wrong labels, {args.noise_model}), "
          f"{len(x_val)} val (noisy), {len(x_te)} noise-free test faces, {args.size} px, {args.arch}; {method_name} "
          f"on {len(unlabelled)} images (train + val), {args.ssl_epochs} epochs, batch {args.ssl_batch_size}; "
          f"classifier {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}; device {device}", flush=True)
    print("| seed | robust | scratch | SSL start | gain | b (only scratch right) | c (only SSL right) | McNemar p "
          "| s scratch / SSL |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "data": {"train": len(x_tr), "val": len(x_val), "test": len(x_te), "unlabelled": len(unlabelled)},
              "pretraining": {}, "pairs": []}
    for seed in args.seeds:
        t0 = time.monotonic()
        ssl_cfg = SSLConfig(method=args.ssl_method, arch=args.arch, size=args.size, epochs=args.ssl_epochs,
                            batch_size=args.ssl_batch_size, lr=args.ssl_lr, temperature=args.temperature, seed=seed,
                            num_threads=args.threads)
        if args.backbone and args.backbone.exists():
            saved = torch.load(args.backbone, weights_only=True)
            # The settings that make the weights what they are: the thread count only sets the speed.
            same = {k: v for k, v in saved["config"].items() if k != "num_threads"} == {
                k: v for k, v in ssl_cfg.to_dict().items() if k != "num_threads"}
            if not same or saved["images"] != len(unlabelled):
                raise SystemExit(f"{args.backbone} was pretrained with other settings or images: {saved['config']}")
            ssl = SSLResult(backbone=saved["model"], history=saved["history"], images=saved["images"])
            where = f"read from {args.backbone}"
        else:
            ssl = pretrain(ssl_cfg, unlabelled, device=device)
            if args.backbone:
                torch.save(backbone_file(ssl, ssl_cfg), args.backbone)
            where = f"{time.monotonic() - t0:.0f} s"
        report["pretraining"][seed] = {"seconds": time.monotonic() - t0,
                                       "loss": [round(h["loss"], 4) for h in ssl.history]}
        print(f"seed {seed}: {method_name} {where}, loss {ssl.history[0]['loss']:.3f} -> "
              f"{ssl.history[-1]['loss']:.3f}", flush=True)
        # The same network at random weights (seeded) is the readout's baseline: random convolutions already
        # group faces by colour and layout.
        torch.manual_seed(seed)
        random_state = build_backbone(args.arch, args.size)[0].state_dict()
        readout = {start: neighbour_readout(embed(state, args.arch, args.size, x_tr, device=device),
                                            embed(state, args.arch, args.size, x_te, device=device),
                                            given_tr, true_tr, true_te)
                   for start, state in (("random", random_state), ("ssl", ssl.backbone))}
        report["pretraining"][seed]["neighbours"] = readout
        print(f"seed {seed}: embedding, {readout['ssl']['k']}-NN (random weights -> {method_name}): test accuracy "
              f"with the true train labels {readout['random']['knn_true']:.1%} -> {readout['ssl']['knn_true']:.1%}, "
              f"with the given ones {readout['random']['knn_given']:.1%} -> {readout['ssl']['knn_given']:.1%} "
              f"(chance {1 / len(np.unique(true_te)):.1%}); neighbours' disagreement finds the wrong train labels at "
              f"AUROC {_f(readout['random']['wrong_auroc'])} -> {_f(readout['ssl']['wrong_auroc'])}", flush=True)
        for spec, method, knobs in methods:
            cfg = TrainConfig(arch=args.arch, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, seed=seed, robust=method, num_threads=args.threads,
                              early_stopping_patience=0, **knobs)
            row = {"seed": seed, "robust": spec}
            preds = {}
            for start, init in (("scratch", None), ("ssl", ssl.backbone)):
                t0 = time.monotonic()
                result = fit(cfg, x_tr, given_tr, x_val, given_val, device=device, init=init)
                preds[start] = predict_proba(result.model, x_te, batch_size=256, device=device,
                                             mode="stream").argmax(1)
                right = int((preds[start] == true_te).sum())
                row[start] = {"accuracy": right / len(true_te), "interval": wilson_interval(right, len(true_te)),
                              "best_epoch": result.best_epoch, "seconds": time.monotonic() - t0,
                              **({"init": {"loaded": result.init["loaded"], "of": result.init["of"]}}
                                 if result.init else {})}
            test = paired_test((test_ids, true_te, preds["scratch"]), (test_ids, true_te, preds["ssl"]))
            row.update(gain=row["ssl"]["accuracy"] - row["scratch"]["accuracy"], b=test.b, c=test.c, p=test.p)
            report["pairs"].append(row)
            print(f"| {seed} | {spec} | {row['scratch']['accuracy']:.1%} | {row['ssl']['accuracy']:.1%} | "
                  f"{row['gain'] * 100:+.1f} | {test.b} | {test.c} | {test.p:.2g} | "
                  f"{row['scratch']['seconds']:.0f} / {row['ssl']['seconds']:.0f} |", flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2))
    report["total_seconds"] = time.monotonic() - started
    print(f"total {report['total_seconds']:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def _f(value):
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
