"""The import_predictions job: a user's own model's predictions (and embeddings) become a model of the dataset, a
Run with source "imported", stored in the same files a product run with out-of-fold predictions keeps (oof.npz,
oof_features.npy, test_predictions.npz), so that scoring, the review card and CROWDLAB read it by the same code.

The files are read and judged whole first (curation/importers/predictions.py); then they are written to a folder
of their own and the Run row, the folder's move under runs/<id>/ and the job's saved state commit together. A
refused file stores nothing; a re-run after a worker died returns the run already made.

The worker's side: only the job runner imports it (the registry names it). The parameters are
curation/importers/predictions_params.py.
"""
import os
import shutil
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.classifier.features import OOF_FEATURES_FILE
from curation.classifier.predictions import PREDICTIONS_FILE
from curation.importers.predictions import (
    PredictionsRefused,
    file_sha256,
    read_embeddings,
    read_predictions,
)
from curation.media import media_rel
from curation.models import Dataset, Image, Job, Run
from curation.selectors import dataset_resolve
from training.labels import CLASSES
from training.metrics import classification_report

IN_SAMPLE_WARNING = ("in-sample predictions: the model saw these labels when it trained, so it agrees with the "
                     "wrong ones more than a model that did not; label-issue scores from it are optimistic "
                     "(fewer wrong labels found than there are)")


def import_predictions_job(ctx):
    if ctx.state.get("run_id") and Run.objects.filter(pk=ctx.state["run_id"]).exists():
        return ctx.state["result"]  # a re-run after the commit below: the import is done
    p = ctx.params
    dataset = dataset_resolve(name=p["dataset"])
    ctx.progress(0.0, "reading the predictions", force=True)
    images = {path: (pk, split, label) for pk, path, split, label in
              Image.objects.filter(dataset=dataset).values_list("id", "path", "split", "label")}
    predictions = read_predictions(p["path"], {path: v[0] for path, v in images.items()})
    embeddings = None
    if p.get("embeddings"):
        ctx.progress(0.3, "reading the embeddings", force=True)
        embeddings = read_embeddings(p["embeddings"], predictions.paths)
    split = np.array([images[path][1] for path in predictions.paths])
    label = np.array([images[path][2] for path in predictions.paths], dtype=np.int64)
    train, test = split == Image.Split.TRAIN, split == Image.Split.TEST
    n_train = sum(1 for v in images.values() if v[1] == Image.Split.TRAIN)
    if not train.any():
        raise PredictionsRefused(f"none of the {len(split)} rows is a train-split image of {dataset.name}: the queue "
                                 f"scores the train split, so there is nothing to score")
    ctx.progress(0.6, "storing", force=True)
    staging = Path(settings.MEDIA_ROOT) / "runs" / f".import-job{ctx.job_id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        np.savez(staging / "oof.npz", ids=predictions.image_ids[train], labels=label[train],
                 probs=predictions.probs[train].astype(np.float32))
        if embeddings is not None:
            # Unit rows: cosine neighbours (Datalab, the card) read only directions, and float16 cannot overflow.
            unit = embeddings[train] / np.linalg.norm(embeddings[train], axis=1, keepdims=True)
            np.save(staging / OOF_FEATURES_FILE, unit.astype(np.float16))
        metrics = None
        if test.any():
            np.savez(staging / PREDICTIONS_FILE, ids=predictions.image_ids[test], labels=label[test],
                     probs=predictions.probs[test].astype(np.float32))
            metrics = classification_report(label[test], predictions.probs[test].argmax(1), len(CLASSES))
        config = {"file": Path(p["path"]).name, "name": p["name"], "sha256": predictions.sha256,
                  "columns": predictions.columns, "softmaxed": predictions.softmaxed,
                  "out_of_sample": p["out_of_sample"], "rows": len(split),
                  "embeddings": None if embeddings is None else {
                      "file": Path(p["embeddings"]).name, "dimensions": int(embeddings.shape[1]),
                      "sha256": file_sha256(p["embeddings"])}}
        selection = {"train": int(train.sum()), "val": int((split == Image.Split.VAL).sum()), "test": int(test.sum()),
                     "train_in_dataset": n_train}
        with transaction.atomic():
            run = Run.objects.create(
                dataset=dataset, job_id=ctx.job_id, source=Run.Source.IMPORTED, arch="imported", config=config,
                selection=selection, status=Run.Status.SUCCEEDED, test_metrics=metrics, finished_at=timezone.now(),
                created_by_id=_job_user(ctx.job_id))
            final = Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)
            if final.exists():  # a folder left by a run row that no longer exists
                shutil.rmtree(final)
            os.replace(staging, final)
            Run.objects.filter(pk=run.pk).update(oof_file=media_rel(final / "oof.npz"))
            if p["feed_queue"]:
                Dataset.objects.filter(pk=dataset.pk).update(queue_run=run)
            result = _result(run, dataset, predictions, embeddings, selection, metrics, p)
            ctx.save_state({"run_id": run.pk, "result": result})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _job_user(job_id):
    return Job.objects.filter(pk=job_id).values_list("created_by_id", flat=True).first()


def _result(run, dataset, predictions, embeddings, selection, metrics, p):
    warnings = []
    if not p["out_of_sample"]:
        warnings.append(IN_SAMPLE_WARNING)
    if selection["train"] < selection["train_in_dataset"]:
        warnings.append(f"predictions for {selection['train']} of the {selection['train_in_dataset']} train images; "
                        f"the others get no classifier or Datalab signal from this model")
    result = {"run": run.pk, "dataset": dataset.name, "rows": len(predictions.paths), **selection,
              "columns": predictions.columns, "softmaxed": predictions.softmaxed,
              "out_of_sample": p["out_of_sample"],
              "embeddings": None if embeddings is None else int(embeddings.shape[1]),
              "test_accuracy": None if metrics is None else metrics["accuracy"],
              "feeds_queue": p["feed_queue"]}
    if warnings:
        result["warning"] = "; ".join(warnings)
    return result
