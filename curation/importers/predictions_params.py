"""The import_predictions job's parameters, checked before anything is queued by the command, the form, the API and
job_enqueue alike (no torch: web processes import it). The worker's side is curation/importers/
predictions_handler.py."""
from pathlib import Path

from curation.importers.predictions import EMBEDDING_SUFFIXES, PREDICTION_SUFFIXES
from curation.importers.roots import import_path_resolve
from curation.jobs.errors import JobParamsError
from curation.selectors import dataset_resolve


def _flag(params, key, default=None):
    value = params.get(key, default)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    if value is None or isinstance(value, bool):
        return value
    raise JobParamsError(f"{key} must be true or false, not {value!r}")


def _file_param(params, key, suffixes, what):
    raw = str(params.get(key) or "").strip()
    if not raw:
        return None
    path = import_path_resolve(raw)  # below the import roots: the worker reads the server's disk
    if not path.is_file():
        raise JobParamsError(f"{key} {raw!r} is a folder; give the {what} file")
    if path.suffix.lower() not in suffixes:
        raise JobParamsError(f"{key} {raw!r}: {what} are {' or '.join(suffixes)}, not {path.suffix or 'no suffix'}")
    return str(path)


def validate_import_predictions_params(params):
    unknown = set(params) - {"dataset", "path", "embeddings", "out_of_sample", "feed_queue", "name"}
    if unknown:
        raise JobParamsError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    dataset = dataset_resolve(name=params.get("dataset"))
    out_of_sample = _flag(params, "out_of_sample")
    if out_of_sample is None:
        raise JobParamsError("say whether the predictions are out-of-sample (out_of_sample true: the model never "
                             "trained on these images' labels, e.g. cross-validated) or in-sample (false)")
    name = str(params.get("name") or "").strip()[:100]
    path = _file_param(params, "path", PREDICTION_SUFFIXES, "predictions")
    if path is None:
        raise JobParamsError("path is required: the predictions file (CSV or Parquet of path and 8 class columns)")
    return {"dataset": dataset.name, "path": path,
            "embeddings": _file_param(params, "embeddings", EMBEDDING_SUFFIXES, "embeddings"),
            "out_of_sample": out_of_sample, "feed_queue": bool(_flag(params, "feed_queue", False)),
            "name": name or Path(path).name}
