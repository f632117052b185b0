"""The find_duplicates job's parameters, checked before anything is queued by the command, the form, the API and
job_enqueue alike (no torch: web processes import it). The worker's side is curation/duplicates/handler.py."""
from curation.duplicates import detect
from curation.jobs.errors import JobParamsError
from curation.models import Image
from curation.selectors import dataset_resolve


def _number(params, key, default, low, high, kind):
    value = params.get(key)
    value = default if value is None else value
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or (kind is int and number != value) or not low <= number <= high:
        raise JobParamsError(f"{key} must be a {'whole ' if kind is int else ''}number in [{low}, {high}], "
                             f"not {value!r}")
    return number


def validate_duplicates_params(params):
    dataset = dataset_resolve(name=params.get("dataset"))
    if not Image.objects.filter(dataset=dataset).exists():
        raise JobParamsError(f"dataset {dataset.name!r} has no images to look for duplicates in")
    return {
        "dataset": dataset.name,
        "max_hash_distance": _number(params, "max_hash_distance", detect.MAX_HASH_DISTANCE, 0, detect.HASH_BITS, int),
        "max_colour_distance": _number(params, "max_colour_distance", detect.MAX_COLOUR_DISTANCE, 0.0, 2.0, float),
        # The residual a linked pair may keep once aligned (align.py); a large value keeps every link.
        "max_residual": _number(params, "max_residual", detect.MAX_RESIDUAL, 0.0, 100.0, float),
    }
