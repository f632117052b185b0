"""The import_dataset job's parameters, checked before anything is queued by the command, the form, the API and
job_enqueue alike (no torch: web processes import it). The worker's side is curation/importers/handler.py."""
from django.core.exceptions import ValidationError

from curation.importers.roots import import_path_resolve
from curation.importers.sources import SCANNERS
from curation.jobs.errors import JobParamsError
from curation.models import dataset_name_validator
from curation.selectors import DatasetNotFound, dataset_get


def validate_import_params(params):
    name = str(params.get("name") or "").strip()
    fmt = str(params.get("format") or "").strip()
    path = str(params.get("path") or "").strip()
    if fmt not in SCANNERS:
        raise JobParamsError(f"format {fmt!r} is not one of {', '.join(SCANNERS)}")
    try:
        dataset_name_validator(name)
    except ValidationError as exc:
        raise JobParamsError(f"dataset name {name!r}: {exc.messages[0]}") from None
    if not path:
        raise JobParamsError("path is required")
    clean = {"name": name, "format": fmt}
    for key, default in (("test_fraction", 0.15), ("val_fraction", 0.1)):
        value = float(params.get(key, default))
        if not 0.0 <= value < 0.5:
            raise JobParamsError(f"{key} must be in [0, 0.5), got {value}")
        clean[key] = value
    seed = int(params.get("seed", 0))
    if seed < 0:
        raise JobParamsError(f"seed must be >= 0, got {seed}")
    clean["seed"] = seed
    # The disk last: the cheap checks name a bad number before the path is looked at.
    clean["path"] = str(import_path_resolve(path))
    try:
        existing = dataset_get(name=name)
    except DatasetNotFound:
        existing = None  # a new dataset
    if existing and existing.format != fmt:
        raise JobParamsError(f"dataset {name!r} was imported as {existing.format}, not {fmt}")
    return clean
