"""The map_dataset job's parameters, checked before anything is queued, and where its embeddings come from (the
dataset page and the map API ask too). No torch, no umap: web processes import it. The worker's side is
curation/maps/handler.py."""
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
