"""GAN-derived scores beyond SSIM, measured against known truth: what the classifier reads in G(x).

For a train image x labelled A and the generator G = G_{A->B} of each pair holding A, three scores besides the SSIM
contrast that scoring stores (curation/scoring/handler.py), each oriented so that higher = more suspect:

- target gain: -(p_B(G(x)) - p_B(x)). A generator that works moves a real A face towards B; a face that already
  shows B (labelled A by mistake) has little left to gain. p_B(x) is the out-of-fold probability cleanlab reads
  (from a fold model that did not see x); p_B(G(x)) is the run's final model on G(x), an image it never saw.
- source drop: -(p_A(x) - p_A(G(x))), the same read from the given label's side.
- embedding shift: -(cosine distance between the final model's embeddings of x and G(x)), standardised over the
  direction's images: how little the generator moved the image in the space the classifier reads. The final model
  was trained on x with its given label, so its embedding of x leans towards A: a bias against this score.

Each is measured per direction (AUROC of wrong labels among the direction's images), over all images (an image's
highest score over its directions), and for what it adds to cleanlab's margin: the cross-validated AUROC of a
logistic fit of the margin and the score against the truth, beside the margin's own. A score that adds nothing
there has not earned a place in the fused suspicion (curation/scoring/fusion.py), whatever its own AUROC.

A measurement of the benchmark only: it reads the truth, so no product signal comes from here.
"""
from pathlib import Path

import numpy as np
from django.conf import settings

from curation.classifier.arrays import load_arrays
from curation.classifier.selection import Item
from curation.gans.generators import load_generator
from curation.gans.snapshots import (
    DIRECTIONS,
    direction_labels,
    direction_name,
    generator_snapshot,
    pair_generators,
)
from curation.models import Image, Run, TransformScore
from curation.scoring.fusion import LABEL_QUALITY

SCORES = ("target gain", "source drop", "embedding shift", "ssim contrast (stored)")
REFERENCE = "cleanlab margin"


def _auroc(y, s):
    from sklearn.metrics import roc_auc_score

    y, s = np.asarray(y, bool), np.asarray(s, float)
    ok = ~np.isnan(s)
    if ok.sum() < 2 or y[ok].all() or not y[ok].any():
        return None
    return float(roc_auc_score(y[ok], s[ok]))


def _cv_auroc(X, y, seed=0):
    """Cross-validated AUROC of a standardised logistic fit (5 folds), as fusion.choose_from_reviews judges."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    held_out = cross_val_predict(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                                 method="predict_proba")[:, 1]
    return float(roc_auc_score(y, held_out))


def _baseline_run(dataset):
    """The first run with out-of-fold probabilities: the baseline the scores were computed from."""
    return (Run.objects.filter(dataset=dataset, status=Run.Status.SUCCEEDED).exclude(oof_file="")
            .exclude(checkpoint="").order_by("id").first())


def _generate(net, images_u8, device, batch=256):
    import torch

    from gan.cyclegan import to_u8, to_unit
    from training.placement import iter_batches

    out = np.empty_like(images_u8)
    start = 0
    with torch.no_grad():
        for x in iter_batches(images_u8, device, batch):
            y = to_u8(net(to_unit(x))).permute(0, 2, 3, 1).cpu().numpy()
            out[start:start + len(y)] = y
            start += len(y)
    return out


def _resize(images_u8, size):
    if images_u8.shape[1] == size:
        return images_u8
    from PIL import Image as PILImage

    return np.stack([np.asarray(PILImage.fromarray(im).resize((size, size), PILImage.BILINEAR)) for im in images_u8])


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def measure_gan_signals(dataset, noisy_by_path, *, say=lambda _m: None):
    """{"run", "directions": [{direction, images, wrong, auroc: {score: value}}], "overall": {score: AUROC},
    "added_to_margin": {score: {"margin": cv AUROC, "with": cv AUROC, "gain": difference}}} for `dataset`'s latest
    CycleGANs and its baseline run; noisy_by_path {image path: whether its given label is wrong}. Labels are the
    ones the images came with (original_label), as the baseline and the scores saw them."""
    import torch
    from cleanlab.rank import get_label_quality_scores

    from training.engine import load_model, predict_proba_and_features
    from training.placement import pick_device

    run = _baseline_run(dataset)
    gans = pair_generators(dataset)
    if run is None or not gans:
        return {"run": None, "why": "needs a run with out-of-fold probabilities and a finished CycleGAN"}

    with np.load(Path(settings.MEDIA_ROOT) / run.oof_file) as data:
        oof_ids, oof_probs, oof_labels = data["ids"], data["probs"].astype(np.float64), data["labels"]
    oof_probs /= oof_probs.sum(1, keepdims=True)
    row_of = {int(i): k for k, i in enumerate(oof_ids.tolist())}
    margin = get_label_quality_scores(oof_labels, oof_probs, method=LABEL_QUALITY)
    device = pick_device()
    checkpoint = torch.load(Path(settings.MEDIA_ROOT) / run.checkpoint, weights_only=True, map_location="cpu")
    model, cfg = load_model(checkpoint, device)

    per_image = {}  # image id -> {score: highest over its directions}
    directions = []
    for gan in gans:
        _, epoch = generator_snapshot(gan)
        stored = {}
        for image_id, direction, ssim, into in TransformScore.objects.filter(gan=gan, epoch=epoch).values_list(
                "image_id", "direction", "ssim", "ssim_into"):
            stored[(image_id, direction)] = ssim - into if into is not None else ssim
        for direction in DIRECTIONS:
            source, target = direction_labels(gan, direction)
            rows = (Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, original_label=source)
                    .order_by("id").values("id", "file", "content_hash", "path"))
            items = [Item("image", r["id"], r["file"], r["content_hash"], source, r["path"]) for r in rows
                     if r["id"] in row_of and r["path"] in noisy_by_path]
            if len(items) < 2:
                continue
            name = direction_name(gan, direction)
            say(f"GAN signals: {name}, {len(items)} images")
            net, gan_size = load_generator(gan, direction, epoch, device)
            x_gan, _ = load_arrays(items, gan_size)
            generated = _resize(_generate(net, np.asarray(x_gan), device), cfg.size)
            x, _ = load_arrays(items, cfg.size)
            p_gx, e_gx = predict_proba_and_features(model, generated, batch_size=256, device=device)
            _, e_x = predict_proba_and_features(model, np.asarray(x), batch_size=256, device=device)
            rows_oof = np.array([row_of[i.id] for i in items])
            p_x = oof_probs[rows_oof]
            shift = 1.0 - (_unit(e_x) * _unit(e_gx)).sum(1)
            shift_z = (shift - shift.mean()) / (shift.std() or 1.0)
            scores = {
                "target gain": -(p_gx[:, target] - p_x[:, target]),
                "source drop": -(p_x[:, source] - p_gx[:, source]),
                "embedding shift": -shift_z,
                "ssim contrast (stored)": np.array([stored.get((i.id, direction), np.nan) for i in items], float),
                REFERENCE: -margin[rows_oof],
            }
            y = np.array([noisy_by_path[i.path] for i in items])
            directions.append({"direction": name, "images": len(items), "wrong": int(y.sum()),
                               "auroc": {k: _auroc(y, v) for k, v in scores.items()}})
            for k, item in enumerate(items):
                best = per_image.setdefault(item.id, {"noisy": bool(y[k]), REFERENCE: float(scores[REFERENCE][k])})
                for score in SCORES:
                    v = scores[score][k]
                    if not np.isnan(v):
                        best[score] = max(best.get(score, -np.inf), float(v))
    if not per_image:
        return {"run": run.pk, "directions": directions, "overall": {}, "added_to_margin": {}}
    y = np.array([v["noisy"] for v in per_image.values()])
    columns = {k: np.array([v.get(k, np.nan) for v in per_image.values()], float) for k in (*SCORES, REFERENCE)}
    overall = {k: _auroc(y, v) for k, v in columns.items()}
    added = {}
    if y.any() and not y.all() and min(y.sum(), (~y).sum()) >= 5:
        alone = _cv_auroc(columns[REFERENCE][:, None], y)
        for score in SCORES:
            both = np.column_stack([columns[REFERENCE], np.nan_to_num(columns[score], nan=np.nanmean(columns[score]))])
            with_score = _cv_auroc(both, y)
            added[score] = {"margin": alone, "with": with_score, "gain": with_score - alone}
    return {"run": run.pk, "images": int(len(y)), "wrong": int(y.sum()), "directions": directions,
            "overall": overall, "added_to_margin": added}


def _f(v):
    return "-" if v is None else f"{v:.3f}"


def markdown_table(result):
    """The figures as Markdown tables: AUROC per direction and overall, then what each score adds to the margin."""
    names = (*SCORES, REFERENCE)
    lines = ["| direction | images | wrong | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for d in result["directions"]:
        lines.append(f"| {d['direction']} | {d['images']} | {d['wrong']} | "
                     + " | ".join(_f(d["auroc"].get(n)) for n in names) + " |")
    if result.get("overall"):
        lines.append(f"| all (highest over an image's directions) | {result['images']} | {result['wrong']} | "
                     + " | ".join(_f(result["overall"].get(n)) for n in names) + " |")
    added = result.get("added_to_margin") or {}
    if added:
        lines += ["", "| score | margin alone (CV AUROC) | margin + score (CV AUROC) | gain |", "|---|---|---|---|"]
        for name, a in added.items():
            lines.append(f"| {name} | {a['margin']:.4f} | {a['with']:.4f} | {a['gain']:+.4f} |")
    return "\n".join(lines)
