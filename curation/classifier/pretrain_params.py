"""The pretrain_ssl job's parameters, checked before anything is queued by the command, the form, the API and
job_enqueue alike (no torch: web processes import it). The worker's side is curation/classifier/pretrain_handler.py."""
from curation.jobs.errors import JobParamsError
from curation.models import Image
from curation.selectors import dataset_resolve
from training.ssl_config import SSLConfig  # a dataclass only: no torch in web processes

# The job's parameters that are SSLConfig fields of the same name; their defaults are SSLConfig's.
SSL_KEYS = ("method", "arch", "size", "epochs", "batch_size", "lr", "temperature", "seed")
_SSL_DEFAULTS = SSLConfig()
DEFAULTS = {key: getattr(_SSL_DEFAULTS, key) for key in SSL_KEYS}


def pretrain_images(dataset_name):
    """The images a pretraining reads: every image of the dataset outside its test split, by id."""
    return Image.objects.filter(dataset__name=dataset_name).exclude(split=Image.Split.TEST).order_by("id")


def ssl_config(p):
    return SSLConfig(**{key: p[key] for key in SSL_KEYS})


def validate_pretrain_params(params):
    """The job's parameters, checked as the command, the API and the form all send them; JobParamsError names a bad
    one, or a dataset with fewer images (outside its test split) than one batch, before anything is queued."""
    clean = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    unknown = set(clean) - set(DEFAULTS) - {"dataset"}
    if unknown:
        raise JobParamsError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    clean["dataset"] = dataset_resolve(name=clean.get("dataset")).name
    for key in ("size", "epochs", "batch_size", "seed"):
        try:
            clean[key] = int(clean[key])
        except (TypeError, ValueError):
            raise JobParamsError(f"{key} must be an integer, not {clean[key]!r}") from None
    for key in ("lr", "temperature"):
        try:
            clean[key] = float(clean[key])
        except (TypeError, ValueError):
            raise JobParamsError(f"{key} must be a number, not {clean[key]!r}") from None
    try:
        ssl_config(clean).validate()
    except ValueError as exc:
        raise JobParamsError(str(exc)) from None
    n = pretrain_images(clean["dataset"]).count()
    if n < clean["batch_size"]:
        raise JobParamsError(
            f"dataset {clean['dataset']!r} has {n} images outside its test split, fewer than one batch of "
            f"{clean['batch_size']}: self-supervised pretraining compares each image with the rest of a full batch; "
            f"give a batch size of at most {n}" + (" (2 or more)" if n >= 2 else "") + " or import more images")
    return clean
