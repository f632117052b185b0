"""The classifier training job: select, decode once, optionally K out-of-fold models, then the final model,
evaluated on the dataset's frozen test split. Resumable: every epoch's checkpoint is saved under the run's folder
and a re-run continues from the last one; finished folds are not trained again.

The worker's side: only the job runner imports it (the registry names it). The parameters, their validation and
the preview are curation/classifier/params.py."""
import csv
import io
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.classifier.arrays import load_arrays
from curation.classifier.collapse import collapse_warning
from curation.classifier.features import OOF_FEATURES_FILE
from curation.classifier.params import TRAIN_DEFAULTS, SIZE_KEYS, glc_trusted, train_config
from curation.classifier.predictions import PREDICTIONS_FILE, run_predictions_path
from curation.classifier.preview import selection_for
from curation.classifier.selection import Item, Selection
from curation.classifier.ssl_init import ssl_job_weights
from curation.jobs.errors import JobCancelled, JobLost
from curation.media import load_resume, media_rel, save_torch
from curation.models import GeneratedImage, Image, Run
from curation.selectors import dataset_get
from training import plots
from training.config import SMALL_TRAIN_SPLIT, TrainConfig, noisy_val_schedule, size_defaults
from training.engine import (best_weights_checkpoint, fit, last_linear, out_of_fold_splits, predict_proba,
                             predict_proba_and_features)
from training.placement import choose_placement, pick_device
from training.init import InitError
from training.labels import CLASSES, CODE
from training.metrics import classification_report
from training.robust import estimate_corruption

log = logging.getLogger(__name__)

# Validation that review makes trustworthy: with at least this many reviewed (confirmed or relabelled) val images,
# early stopping and the kept epoch are chosen on them alone, on their reviewed labels.
REVIEWED_VAL_MIN = 20
# Otherwise on the whole val split, whose labels are as noisy as the train split's, with a minimum of epochs and a
# patience that scale with the train split's size (training.config.noisy_val_schedule).

# The share of the progress bar that training takes: evaluating on the test split after it is the rest (0.99 to
# 1.0), so the bar never shows 100 % before the run is done.
TRAINING_SHARE = 0.98


def glc_estimate(dataset):
    """What a glc run records in its selection["glc"]: the corruption matrix C[true, given] (training.robust.
    estimate_corruption over glc_trusted's images: their out-of-fold probabilities, averaged per reviewed label) and
    where it came from. Read once when the run starts; a resumed attempt reuses it."""
    source, labels, origin = glc_trusted(dataset)
    with np.load(Path(settings.MEDIA_ROOT) / source.oof_file) as oof:
        row = {pk: i for i, pk in enumerate(oof["ids"].tolist())}
        ids = sorted(labels)
        probs = oof["probs"][[row[pk] for pk in ids]]
    matrix, report = estimate_corruption(probs, np.array([labels[pk] for pk in ids]), len(CLASSES))
    return {"from": origin, "run": source.pk, **report, "matrix": matrix.round(6).tolist()}


def _init_weights_file(value):
    if value.startswith("run:"):
        return Path(settings.MEDIA_ROOT) / Run.objects.get(pk=int(value[4:])).checkpoint
    if value.startswith("ssl:"):
        return ssl_job_weights(int(value[4:]))[1]
    return Path(value)


def _load_init(value):
    """What torch.load gives for the run's pretrained start, or None; InitError naming an unreadable file."""
    if not value:
        return None
    path = _init_weights_file(value)
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # not a torch file, truncated, or pickled objects beyond tensors
        raise InitError(f"init {value}: {path.name} is not a weights file torch can load safely "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def _selection(dataset, p):
    """(the run's selection, its calibrated-relabel rule or None) for validated params p, as the data are now: the
    preview's own function (curation/classifier/preview.py), so what a preview counts is what the run selects."""
    return selection_for(dataset, p)


def choose_size_defaults(sel, cfg, p):
    """(cfg with the defaults that fit the train split's size, what the run records in selection["size_defaults"]):
    each SIZE_KEYS field the params leave unset takes training.config.size_defaults (a train split under
    SMALL_TRAIN_SPLIT images) or TrainConfig's default. A value the params give is kept as given."""
    n = len(sel.train)
    chosen = {key: value for key, value in size_defaults(n).items() if key in SIZE_KEYS and p.get(key) is None}
    if n < SMALL_TRAIN_SPLIT:
        why = (f"train split of {n:,} images, under {SMALL_TRAIN_SPLIT:,}: "
               + (", ".join(f"{key.replace('_', ' ')} {value}" for key, value in chosen.items()) or "none unset")
               + (f" (given: {', '.join(k.replace('_', ' ') for k in SIZE_KEYS if p.get(k) is not None)})"
                  if any(p.get(k) is not None for k in SIZE_KEYS) else ""))
    else:
        why = f"train split of {n:,} images, {SMALL_TRAIN_SPLIT:,} or more: the usual defaults"
    return replace(cfg, **chosen), {"small": n < SMALL_TRAIN_SPLIT, "chosen": chosen, "why": why}


def choose_validation(sel, cfg, p):
    """(cfg with the run's min_epochs and patience, what the run records in selection["validation"]): early
    stopping on the reviewed val images when there are REVIEWED_VAL_MIN of them, else on the noisy val split with a
    minimum number of epochs and a patience that scale with the train split (noisy_val_schedule). A patience or minimum
    the params give is kept as given."""
    reviewed = sum(i.trusted for i in sel.val)
    steps = max(1, math.ceil(len(sel.train) / cfg.batch_size))  # optimizer steps per epoch
    if reviewed >= REVIEWED_VAL_MIN:
        info = {"on": "reviewed", "images": reviewed,
                "why": f"{reviewed} val images a reviewer confirmed or relabelled, on their reviewed labels"}
        min_epochs, patience = 0, TRAIN_DEFAULTS.early_stopping_patience
    else:
        info = {"on": "noisy", "images": len(sel.val),
                "why": f"{reviewed} reviewed val images, fewer than {REVIEWED_VAL_MIN}: the whole val split on its "
                       f"unreviewed labels, with a minimum of epochs and a patience set by the train split's "
                       f"{len(sel.train):,} images ({steps} steps an epoch)"}
        min_epochs, patience = noisy_val_schedule(len(sel.train), cfg.batch_size, cfg.epochs,
                                                  TRAIN_DEFAULTS.early_stopping_patience)
    if p.get("min_epochs") is not None:
        min_epochs = p["min_epochs"]
    if p.get("patience") is not None:
        patience = p["patience"]
    info.update(min_epochs=min_epochs, patience=patience)
    return replace(cfg, min_epochs=min_epochs, early_stopping_patience=patience), info


def validation_arrays(sel, run, size):
    """(images, labels) the run validates on: its reviewed val images on their reviewed labels, or the whole val
    split on its original labels (runs from before the choice was recorded too)."""
    if (run.selection.get("validation") or {}).get("on") == "reviewed":
        items = [i for i in sel.val if i.trusted]
        x, _ = load_arrays(items, size)
        return x, np.array([i.target for i in items], dtype=np.int64)
    return load_arrays(sel.val, size)


def _run_dir(run):
    return run_predictions_path(run).parent


def selection_from_snapshot(text):
    """Rebuild a run's exact selection from its snapshot CSV (labels as recorded, not as they are now)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    image_ids = [int(r["id"]) for r in rows if r["source"] == "image"]
    gen_ids = [int(r["id"]) for r in rows if r["source"] == "generated"]
    images = {i["id"]: i for i in Image.objects.filter(id__in=image_ids).values("id", "file", "content_hash")}
    gens = {g["id"]: g for g in GeneratedImage.objects.filter(id__in=gen_ids).values("id", "file", "content_hash")}
    sel = Selection()
    for r in rows:
        source = images if r["source"] == "image" else gens
        found = source[int(r["id"])]
        # Snapshots written before trusted labels and training targets have neither column: untrusted, own label.
        getattr(sel, r["split"]).append(
            Item(r["source"], int(r["id"]), found["file"], found["content_hash"], CODE[r["label"]], r["path"],
                 trusted=r.get("trusted") == "1", target=CODE[r["target"]] if r.get("target") else None))
    return sel


def _start_run(ctx, dataset, p, cfg):
    sel, rule = _selection(dataset, p)
    if rule:
        sel.counts["relabel_rule"] = {k: rule[k] for k in ("target", "threshold", "images", "reason")}
    cfg, sel.counts["size_defaults"] = choose_size_defaults(sel, cfg, p)  # first: the schedule counts its steps
    cfg, sel.counts["validation"] = choose_validation(sel, cfg, p)
    if cfg.robust == "glc":
        sel.counts["glc"] = glc_estimate(dataset)
    targets = np.bincount([i.target for i in sel.train], minlength=cfg.num_classes)
    sel.counts["majority_share"] = float(targets.max() / max(1, targets.sum()))  # chance, for the collapse check
    with transaction.atomic():
        run = Run.objects.create(
            dataset=dataset, job_id=ctx.job_id, arch=cfg.arch, config=cfg.to_dict(), reduced=p["reduced"],
            augmented=p["augmented"], folds=p["folds"], snapshot_hash=sel.snapshot_hash(),
            selection=sel.counts, test_split_hash=sel.test_split_hash(),
            derived_from_id=p.get("derived_from"), group=p.get("group") or "",
        )
        snapshot = _run_dir(run) / "snapshot.csv"
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(sel.snapshot_csv())
        Run.objects.filter(pk=run.pk).update(snapshot_file=media_rel(snapshot))
        ctx.save_state({"run_id": run.pk, "folds_done": []})
    return Run.objects.get(pk=run.pk)


def train_classifier_job(ctx):
    p = ctx.params
    dataset = dataset_get(name=p["dataset"])
    cfg = train_config(p)
    run = Run.objects.get(pk=ctx.state["run_id"]) if ctx.state.get("run_id") else _start_run(ctx, dataset, p, cfg)
    cfg = TrainConfig.from_dict(run.config)
    try:
        result = _train(ctx, run, cfg)
    except (JobCancelled, JobLost) as exc:
        status = Run.Status.CANCELLED if isinstance(exc, JobCancelled) else None
        if status:
            Run.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now())
        raise
    except Exception as exc:
        Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED, error=str(exc), finished_at=timezone.now())
        raise
    return result


def _train(ctx, run, cfg):
    sel = selection_from_snapshot((Path(settings.MEDIA_ROOT) / run.snapshot_file).read_text())
    device = pick_device()
    ctx.progress(0.0, f"decoding {len(sel.train) + len(sel.val) + len(sel.test)} images at {cfg.size} px", force=True)
    x_train, y_given = load_arrays(sel.train, cfg.size)
    # Training fits each image to its target: its label, or a calibrated relabel's suggestion (curation/classifier/
    # relabels.py). The out-of-fold file keeps the labels, which cleanlab judges.
    y_train = np.array([i.target for i in sel.train], dtype=np.int64)
    trusted = np.array([i.trusted for i in sel.train], dtype=bool)  # a reviewer decided them (selection.py)
    trusted = trusted if trusted.any() else None
    # GLC's corruption matrix, estimated when the run started (glc_estimate); the other methods take none.
    corruption = np.array(run.selection["glc"]["matrix"]) if cfg.robust == "glc" else None
    init = _load_init(ctx.params.get("init"))  # a pretrained start for every fit of the run, or None
    x_val, y_val = validation_arrays(sel, run, cfg.size)
    x_test, y_test = load_arrays(sel.test, cfg.size)
    # The tensor cache on the device whole, or streamed to it batch by batch: said in the job's message and result.
    placement = choose_placement(x_train.nbytes + x_val.nbytes, device)
    log.info("run %s: tensor cache %s", run.pk, placement)
    ctx.progress(0.0, f"tensor cache: {placement}", force=True)
    run_dir = _run_dir(run)
    fits = run.folds + 1

    def hooks(unit, label, checkpoint_path, history_to_run=False):
        def on_step(epoch, step, steps):
            done = unit + ((epoch - 1) + step / steps) / cfg.epochs
            ctx.progress(TRAINING_SHARE * done / fits, f"{label}: epoch {epoch}/{cfg.epochs}, batch {step}/{steps}")

        def on_epoch(checkpoint):
            save_torch(checkpoint, checkpoint_path)
            if history_to_run:
                Run.objects.filter(pk=run.pk).update(history=checkpoint["history"])
            last = checkpoint["history"][-1]
            ctx.progress(TRAINING_SHARE * (unit + checkpoint["epoch"] / cfg.epochs) / fits,
                         f"{label}: epoch {checkpoint['epoch']} val acc {last['val_acc']:.3f}", force=True)

        return on_step, on_epoch

    if run.folds:
        for k, (fit_idx, held_idx) in enumerate(out_of_fold_splits(y_train, run.folds, cfg.seed)):
            out = run_dir / f"oof_fold{k}.npz"
            if k in ctx.state.get("folds_done", []) and out.exists():
                continue
            ckpt = run_dir / f"fold{k}_last.pt"
            on_step, on_epoch = hooks(k, f"fold {k + 1}/{run.folds}", ckpt)
            result = fit(cfg, x_train, y_train, x_val, y_val, device=device, train_index=fit_idx, trusted=trusted, init=init,
                         corruption=corruption, mode=placement.mode, resume=load_resume(ckpt), on_epoch=on_epoch,
                         on_step=on_step)
            # The held-out images' probabilities and penultimate-layer embeddings, from the model that did not
            # see them (curation/classifier/features.py).
            probs, features = predict_proba_and_features(result.model, x_train, index=held_idx,
                                                         mode=placement.mode, batch_size=256, device=device)
            head = last_linear(result.model)  # kept with them: the fold model's class scores are head(features)
            np.savez(out, index=held_idx, probs=probs, features=features.astype(np.float16),
                     head_weight=head.weight.detach().float().cpu().numpy(),
                     head_bias=head.bias.detach().float().cpu().numpy())
            with transaction.atomic():
                ctx.save_state({**ctx.state, "folds_done": sorted({*ctx.state.get("folds_done", []), k})})
            ckpt.unlink(missing_ok=True)
        oof = np.zeros((len(y_train), cfg.num_classes), dtype=np.float32)
        embeddings = None  # rows of oof.npz; None if a fold file from before embeddings were kept was resumed
        for k in range(run.folds):
            with np.load(run_dir / f"oof_fold{k}.npz") as part:
                oof[part["index"]] = part["probs"]
                if k == 0 and "features" in part.files:
                    embeddings = np.zeros((len(y_train), part["features"].shape[1]), dtype=np.float16)
                if embeddings is not None and "features" in part.files:
                    embeddings[part["index"]] = part["features"]
                else:
                    embeddings = None
        is_image = np.array([i.kind == "image" for i in sel.train])
        np.savez(run_dir / "oof.npz", ids=np.array([i.id for i in sel.train])[is_image], labels=y_given[is_image],
                 probs=oof[is_image])
        if embeddings is not None:
            np.save(run_dir / OOF_FEATURES_FILE, embeddings[is_image])
        else:
            log.warning("run %s: a fold file without embeddings was resumed; no %s", run.pk, OOF_FEATURES_FILE)
        Run.objects.filter(pk=run.pk).update(oof_file=media_rel(run_dir / "oof.npz"))

    last = run_dir / "final_last.pt"
    on_step, on_epoch = hooks(run.folds, "final model", last, history_to_run=True)
    result = fit(cfg, x_train, y_train, x_val, y_val, device=device, resume=load_resume(last), mode=placement.mode,
                 trusted=trusted, init=init, corruption=corruption, on_epoch=on_epoch, on_step=on_step)
    if result.init is not None:
        run.selection = {**run.selection, "init": {"from": ctx.params["init"], "loaded": result.init["loaded"],
                                                   "of": result.init["of"], "skipped": result.init["skipped"][:20]}}
        Run.objects.filter(pk=run.pk).update(selection=run.selection)
    ctx.progress(0.99, "evaluating on the test split", force=True)
    probs = predict_proba(result.model, x_test, mode="stream", batch_size=256, device=device)
    metrics = _evaluate_and_plot(run, run_dir, result, probs, x_test, y_test, cfg)
    np.savez(run_dir / PREDICTIONS_FILE, ids=np.array([i.id for i in sel.test], dtype=np.int64), labels=y_test,
             probs=probs.astype(np.float32))
    save_torch(best_weights_checkpoint(cfg, result), run_dir / "model.pt")
    last.unlink(missing_ok=True)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.SUCCEEDED, history=result.history, best_epoch=result.best_epoch, test_metrics=metrics,
        checkpoint=media_rel(run_dir / "model.pt"), finished_at=timezone.now(),
    )
    run.refresh_from_db()
    collapse = collapse_warning(run)
    if collapse:
        log.warning("run %s: %s", run.pk, collapse["text"])
    return {"run": run.pk, "dataset": run.dataset.name, "arch": cfg.arch, "test_accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"], "best_epoch": result.best_epoch, "selection": run.selection,
            "oof": bool(run.folds), "cache": placement.to_dict(),
            **({"collapse": collapse["text"]} if collapse else {})}


def _evaluate_and_plot(run, run_dir, result, probs, x_test, y_test, cfg):
    metrics = classification_report(y_test, probs.argmax(1) if len(probs) else np.array([], int), cfg.num_classes)
    names = list(CLASSES)
    pick = np.sort(np.random.default_rng(0).permutation(len(y_test))[:24])  # a fixed spread of test faces
    files = {
        "history": plots.plot_history(result.history, run_dir / "history.png"),
        "confusion": plots.plot_confusion(metrics["confusion"], names, run_dir / "confusion.png"),
        "per_class": plots.plot_per_class(metrics["precision"], metrics["recall"], names, run_dir / "per_class.png"),
        "examples": plots.plot_examples(x_test[pick], y_test[pick], probs[pick], names, run_dir / "examples.png"),
    }
    Run.objects.filter(pk=run.pk).update(plots={k: media_rel(v) for k, v in files.items()})
    return metrics
