"""The map_dataset job: project the embeddings of the model feeding a dataset's queue onto two dimensions and store
the map (store.py). A map whose embeddings file is unchanged (same run, size and modification time) is reused, not
recomputed, unless `force`; after a new run feeds the queue, or its embeddings are rewritten, the job recomputes."""
import time

import numpy as np
from django.utils import timezone

from curation.classifier.features import oof_features_path, read_oof_features
from curation.importers.predictions import file_sha256
from curation.jobs.errors import JobParamsError
from curation.maps import project, store
from curation.selectors import dataset_queue_run, dataset_resolve


def validate_map_params(params):
    unknown = set(params) - {"dataset", "method", "force", "seed"}
    if unknown:
        raise JobParamsError(f"unknown parameter(s) {', '.join(sorted(unknown))}; map_dataset takes dataset, method, "
                             f"force, seed")
    dataset = dataset_resolve(name=params.get("dataset"))
    method = params.get("method") or "auto"
    try:
        project.method_for(method)
    except project.ProjectionError as exc:
        raise JobParamsError(str(exc)) from None
    force, seed = params.get("force", False), params.get("seed", 0)
    if not isinstance(force, bool):
        raise JobParamsError(f"force must be true or false, not {force!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 31:
        raise JobParamsError(f"seed must be a whole number from 0 to {2 ** 31 - 1}, not {seed!r}")
    if embeddings_source(dataset)[1] is None:
        raise JobParamsError(no_embeddings_words(dataset))
    return {"dataset": dataset.name, "method": method, "force": force, "seed": seed}


def embeddings_source(dataset):
    """(the queue's run or None, its embeddings' fingerprint or None)."""
    run = dataset_queue_run(dataset_id=dataset.pk)
    return run, store.embeddings_fingerprint(run)


def no_embeddings_words(dataset):
    return (f"dataset {dataset.name!r} has no embeddings to map: the model feeding its queue must have them (train "
            f"a classifier with --folds, or import_predictions with --embeddings)")


def map_dataset_job(ctx):
    p = ctx.params
    dataset = dataset_resolve(name=p["dataset"])
    run, fingerprint = embeddings_source(dataset)
    if fingerprint is None:
        raise JobParamsError(no_embeddings_words(dataset))
    stored = store.map_read(dataset)
    if not p["force"] and stored is not None and store.map_is_current(stored[2], fingerprint) \
            and p["method"] in ("auto", stored[2]["method"]):
        meta = stored[2]
        ctx.progress(1.0, f"reused the map of job {meta.get('job')} (embeddings unchanged)", force=True)
        return {**_result(dataset, meta, len(stored[0])), "reused": True}
    ctx.progress(0.05, "reading the embeddings", force=True)
    read = read_oof_features(run)
    if read is None:
        raise JobParamsError(no_embeddings_words(dataset))
    ids, order, features = read
    sha256 = file_sha256(oof_features_path(run))
    method = project.method_for(p["method"])
    ctx.progress(0.1, f"projecting {len(ids):,} embeddings ({method})", force=True)
    started = time.monotonic()
    try:
        xy, used = project.project(features, method, seed=p["seed"],
                                   progress=lambda f: ctx.progress(0.1 + 0.8 * f, f"projecting ({method})"))
    except project.ProjectionError as exc:
        raise JobParamsError(f"run {run.pk}'s embeddings: {exc}") from None
    by_row = np.empty(len(ids), np.int64)
    by_row[order] = ids  # the features' rows are in oof.npz's order; `ids` is sorted
    meta = {"job": ctx.job_id, "method": used, "seed": p["seed"], "seconds": round(time.monotonic() - started, 2),
            "made_at": timezone.now().isoformat(), "dimensions": int(features.shape[1]),
            "embeddings": {**fingerprint, "sha256": sha256}}
    ctx.progress(0.95, "storing the map", force=True)
    store.map_write(dataset, by_row, xy, meta)
    return {**_result(dataset, meta, len(ids)), "reused": False}


def _result(dataset, meta, n):
    return {"dataset": dataset.name, "points": n, "run": meta["embeddings"]["run"], "method": meta["method"],
            "seconds": meta["seconds"], "map_job": meta["job"]}
