"""The map_dataset job: project the embeddings of the model feeding a dataset's queue onto two dimensions and store
the map (store.py). A map whose embeddings file is unchanged (same run, size and modification time) is reused, not
recomputed, unless `force`; after a new run feeds the queue, or its embeddings are rewritten, the job recomputes.

The worker's side: only the job runner imports it (the registry names it). The parameters are
curation/maps/params.py."""
import time

import numpy as np
from django.utils import timezone

from curation.classifier.features import oof_features_path, read_oof_features
from curation.importers.predictions import file_sha256
from curation.jobs.errors import JobParamsError
from curation.maps import project, store
from curation.maps.params import embeddings_source, no_embeddings_words
from curation.selectors import dataset_resolve


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
