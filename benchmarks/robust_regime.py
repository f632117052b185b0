"""When does noise-robust training pay? The cleaning benchmark's classifier, trained on its noisy labels with and
without a robust method, at the CPU profile's epochs and at more, measured against the truth (issue #17).

Noise-robust methods such as EAC work against memorisation: a network that has learnt the easy, mostly right
labels goes on to fit the wrong ones, and its test accuracy falls. They have nothing to fix while a network is
still in its early-learning phase. This script says which phase a configuration is in, per run:

- fit to wrong labels: the share of wrong-labelled train images the model predicts as their *wrong* given label
  (memorisation); beside it the share it predicts as their true label;
- train accuracy on the given labels, and on the right-labelled train images;
- test accuracy (the test split is noise-free);
- the run's peak RssAnon (sampled every 20 ms while it trains) and its growth over the RssAnon at its start, and
  their ratio to the first plain (ce) run of the same process;
- for DivideMix, per epoch after the warm-up, how well its division separates wrong from right labels: the AUROC of
  each network's clean probabilities against the truth, the share of the labelled set whose label is right, and
  the share of right labels (and of wrong ones) that land in it.

Reads a folder of make_synthetic_faces (labels.csv and truth.csv: the benchmark writes one under --out/faces) and
trains with training.engine.fit, as the train_classifier job does, one torch process, no Django:

    python -m benchmarks.robust_regime --faces OUT/faces --runs ce:16 eac:16 ce:48 eac:48 oracle:48
    python -m benchmarks.robust_regime --faces OUT/faces --runs ce:24 elr:24 dividemix:24 \
        dividemix@warmup=12,lambda_u=5:24 oracle:24
    python -m benchmarks.robust_regime --faces OUT/faces --trusted-share 0.05 --runs ce:10 glc:10 oracle:10
    python -m benchmarks.robust_regime --faces FACES --init BACKBONE.pt --runs ce:10 dividemix@warmup=5:10

--init FILE: every run starts from this backbone (a `pretrain_ssl` job's weights, or `benchmarks.ssl_start
--backbone`'s file, pretrained on the same faces) instead of a random draw, as `train_classifier --init` does: does
the self-supervised start carry DivideMix's division out of early learning?

--trusted-share S: a random S of the train images (drawn with the seed, as the product's random audit draws) carry
their true label and are trusted in every run but the oracle's, as audited images are in the product. GLC estimates
its corruption matrix from them the paper's way: a plain model trained for the same epochs on the other train
images and their given labels (the product reads the out-of-fold probabilities it already has instead), its
softmax on the trusted images averaged per true class (training.robust.estimate_corruption); the run's seconds
include that fit. Its row also gives the estimate's mean absolute error against the data's own corruption matrix.
"""
import argparse
import csv
import json
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._memory import rss_anon
from training.config import TrainConfig
from training.engine import fit, predict_proba
from training.placement import pick_device
from training.robust import estimate_corruption
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


# What a bare number after "@" sets, per method.
MAIN_KNOB = {"eac": "eac_lambda", "elr": "elr_lambda", "gce": "gce_q", "bootstrap": "bootstrap_beta",
             "dividemix": "dividemix_lambda_u"}  # glc has no knob


def parse_run(spec):
    """"eac:48" -> ("eac", 48, {}); "eac@1:48" sets EAC's lambda to 1 (the method's MAIN_KNOB); "dividemix@warmup=12,
    lambda_u=5:24" sets dividemix_warmup and dividemix_lambda_u; "oracle:48" trains on the true labels; "glc@truth:10"
    trains GLC through the data's own corruption matrix instead of its estimate (what a perfect estimate would buy)."""
    name, epochs = spec.rsplit(":", 1)
    method, _, knobs = name.partition("@")
    if method == "glc" and knobs == "truth":
        return method, int(epochs), {"glc_matrix": "truth"}
    extra = {}
    for part in filter(None, knobs.split(",")):
        key, eq, value = part.partition("=")
        key = f"{method}_{key}" if eq else MAIN_KNOB[method]
        extra[key] = value if key.endswith("split") else float(value if eq else part)
        if key.endswith("warmup"):  # an epoch count
            extra[key] = int(extra[key])
    return method, int(epochs), extra


class PeakRss:
    """The largest RssAnon sampled every `every` s while the block runs, and the RssAnon when it began."""

    def __init__(self, every=0.02):
        self.every, self.start, self.peak = every, 0, 0

    def __enter__(self):
        self.start = self.peak = rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_anon())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())


def auroc(score, positive):
    """Area under the ROC curve of `score` for `positive` (ties counted half), by ranks."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def trusted_slice(n, share, seed):
    """A random `share` of n train images (bools), drawn with the seed: what a random audit would decide."""
    trusted = np.zeros(n, dtype=bool)
    trusted[np.random.default_rng(seed).choice(n, int(round(share * n)), replace=False)] = True
    return trusted


def true_corruption(given, true, num_classes):
    """The data's own C[true, given]: the share of each true class's images carrying each given label."""
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (true, given), 1)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def glc_corruption(cfg, x_tr, y_tr, x_val, y_val, trusted, true_tr, device):
    """GLC's corruption matrix the paper's way: a plain model trained on the untrusted images' given labels, its
    softmax on the trusted images averaged per true class; (matrix, estimate_corruption's report)."""
    import dataclasses

    plain = dataclasses.replace(cfg, robust="none")
    model = fit(plain, x_tr, y_tr, x_val, y_val, device=device, train_index=np.flatnonzero(~trusted)).model
    probs = predict_proba(model, x_tr, index=np.flatnonzero(trusted), batch_size=256, device=device, mode="stream")
    return estimate_corruption(probs, true_tr[trusted], cfg.num_classes)


def read_backbone(path):
    """The weights of a backbone file: a state dict, or a dict holding one under "model" (the SSL files)."""
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    return saved["model"] if isinstance(saved, dict) and "model" in saved else saved


def measure(faces, method, epochs, extra, seed, threads, trusted_share=0.0, init=None):
    x_tr, given_tr, true_tr = faces["train"]
    x_val, given_val, true_val = faces["val"]
    x_te, _, true_te = faces["test"]
    oracle = method == "oracle"
    robust = "none" if oracle else ("none" if method == "ce" else method)
    knobs = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items())
    glc_truth = extra.pop("glc_matrix", None) == "truth"
    cfg = TrainConfig(**CPU_PROFILE, epochs=epochs, robust=robust, seed=seed, num_threads=threads, **extra)
    y_tr, y_val = (true_tr, true_val) if oracle else (given_tr, given_val)
    trusted = None
    if trusted_share and not oracle:  # the audited slice: true labels, trusted
        trusted = trusted_slice(len(y_tr), trusted_share, seed)
        y_tr = np.where(trusted, true_tr, given_tr)
    if method == "glc" and trusted is None:
        raise SystemExit("glc needs trusted images: give --trusted-share (e.g. 0.05)")
    device = pick_device()
    right = given_tr == true_tr
    divisions = []

    def on_divide(epoch, clean_a, clean_b):
        row = {"epoch": epoch}
        for net, clean in (("a", clean_a), ("b", clean_b)):
            labelled = clean > cfg.dividemix_threshold
            row.update({f"auroc_{net}": auroc(clean, right),
                        f"labelled_{net}": float(labelled.mean()),
                        f"labelled_right_{net}": float(right[labelled].mean()) if labelled.any() else float("nan"),
                        f"right_labelled_{net}": float(labelled[right].mean()),
                        f"wrong_labelled_{net}": float(labelled[~right].mean())})
        divisions.append(row)

    from training.dividemix import observe_divisions

    t0 = time.monotonic()
    corruption, glc = None, {}
    with PeakRss() as memory, observe_divisions(on_divide):
        if method == "glc":
            untrusted = ~trusted
            truth = true_corruption(given_tr[untrusted], true_tr[untrusted], cfg.num_classes)
            if glc_truth:
                corruption, glc = truth, {"images": 0, "per_class": [], "fallback": [], "from": "truth"}
            else:
                corruption, glc = glc_corruption(cfg, x_tr, y_tr, x_val, y_val, trusted, true_tr, device)
            glc["mae_vs_truth"] = float(np.abs(corruption - truth).mean())
            glc["matrix"] = corruption.round(4).tolist()
        result = fit(cfg, x_tr, y_tr, x_val, y_val, device=device, trusted=trusted, corruption=corruption,
                     init=init)
    seconds = time.monotonic() - t0
    pred_tr = predict_proba(result.model, x_tr, batch_size=256, device=device, mode="stream").argmax(1)
    pred_te = predict_proba(result.model, x_te, batch_size=256, device=device, mode="stream").argmax(1)
    wrong = given_tr != true_tr
    last = result.history[-1]
    kept = next((h for h in result.history if h["epoch"] == result.best_epoch), result.history[-1])
    return {"run": f"{method}{'@' + knobs if knobs else ''}:{epochs}", "epochs": epochs, "glc": glc,
            "trusted": 0 if trusted is None else int(trusted.sum()),
            "best_epoch": result.best_epoch, "seconds": round(seconds, 1),
            "train_acc_given": float((pred_tr == given_tr).mean()),
            "train_acc_right_labels": float((pred_tr[~wrong] == given_tr[~wrong]).mean()),
            "fit_to_wrong_labels": float((pred_tr[wrong] == given_tr[wrong]).mean()),
            "wrong_labels_predicted_true": float((pred_tr[wrong] == true_tr[wrong]).mean()),
            "last_epoch_train_acc": last.get("train_acc"), "val_acc_given": kept["val_acc"],
            "test_accuracy": float((pred_te == true_te).mean()),
            "init": None if result.init is None else {"loaded": result.init["loaded"], "of": result.init["of"]},
            "peak_rss_anon_mib": memory.peak / 2**20, "rss_anon_growth_mib": (memory.peak - memory.start) / 2**20,
            "divisions": divisions}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", required=True, help="a make_synthetic_faces folder (labels.csv, truth.csv)")
    parser.add_argument("--runs", nargs="+", default=["ce:16", "eac:16", "ce:48", "eac:48", "oracle:48"],
                        help="METHOD[@VALUE|@KNOB=VALUE,...]:EPOCHS, METHOD one of ce, eac, gce, bootstrap, elr, "
                             "dividemix, oracle; VALUE sets the method's main knob (MAIN_KNOB), KNOB=VALUE its "
                             "training option METHOD_KNOB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: one a core)")
    parser.add_argument("--trusted-share", type=float, default=0.0,
                        help="a random share of train images that carry their true label and are trusted in every "
                             "run but the oracle (an audit's slice; glc needs it)")
    parser.add_argument("--init", help="a backbone file every run starts from (a pretraining on these faces)")
    parser.add_argument("--out", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if not 0 <= args.trusted_share < 1:
        parser.error(f"--trusted-share must be in [0, 1), not {args.trusted_share}")
    faces = load_faces(args.faces, CPU_PROFILE["size"])
    init = read_backbone(args.init) if args.init else None
    wrong = faces["train"][1] != faces["train"][2]
    print(f"{len(wrong)} train images, {int(wrong.sum())} wrong labels ({wrong.mean():.1%}); "
          f"{len(faces['test'][0])} test images; trusted share {args.trusted_share:g}; start: "
          f"{args.init or 'random'}")
    rows = []
    print("| run | best epoch | train acc (given) | right labels fitted | wrong labels fitted (memorised) | wrong "
          "labels predicted true | val acc (given, kept epoch) | test accuracy | s | peak RssAnon MiB (growth) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    plain = None
    for spec in args.runs:
        method, epochs, extra = parse_run(spec)
        row = measure(faces, method, epochs, extra, args.seed, args.threads, args.trusted_share, init)
        rows.append(row)
        if method == "ce" and plain is None:
            plain = row
        ratio = "" if plain is None else (f"; x{row['peak_rss_anon_mib'] / plain['peak_rss_anon_mib']:.2f} "
                                          f"(growth x{row['rss_anon_growth_mib'] / max(plain['rss_anon_growth_mib'], 1e-9):.2f})"
                                          f" of {plain['run']}")
        print(f"| {row['run']} | {row['best_epoch']} | {row['train_acc_given']:.3f} | "
              f"{row['train_acc_right_labels']:.3f} | {row['fit_to_wrong_labels']:.3f} | "
              f"{row['wrong_labels_predicted_true']:.3f} | {row['val_acc_given']:.3f} | "
              f"{row['test_accuracy']:.3f} | {row['seconds']} | {row['peak_rss_anon_mib']:.0f} "
              f"({row['rss_anon_growth_mib']:.0f}){ratio} |",
              flush=True)
        if row["glc"]:
            g = row["glc"]
            source = "the data's own" if g.get("from") == "truth" else (
                f"from {g['images']} trusted images (per class {g['per_class']}; pooled rows for classes "
                f"{g['fallback'] or 'none'})")
            print(f"    {row['run']}: C {source}, mean diagonal {np.trace(np.array(g['matrix'])) / 8:.3f}, "
                  f"mean absolute error against the data's own C {g['mae_vs_truth']:.3f}", flush=True)
        for d in row["divisions"]:
            print(f"    {row['run']} epoch {d['epoch']}: division AUROC A {d['auroc_a']:.3f} B {d['auroc_b']:.3f}; "
                  f"labelled {d['labelled_a']:.1%} / {d['labelled_b']:.1%}, of them right "
                  f"{d['labelled_right_a']:.1%} / {d['labelled_right_b']:.1%}; right labels kept "
                  f"{d['right_labelled_a']:.1%}, wrong labels kept {d['wrong_labelled_a']:.1%} (A)", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
