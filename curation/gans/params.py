"""The train_cyclegan job's parameters, checked before anything is queued by the command, the forms, the API and
job_enqueue alike (no torch: web processes import it). The worker's side is curation/gans/handler.py."""
from curation.gans.data import domain_items
from curation.jobs.errors import JobParamsError
from curation.selectors import dataset_resolve
from gan.config import PROFILES, make_config
from training.labels import CLASSES, UnknownLabel, parse_label

MIN_DOMAIN = 8


def parse_pair(pair):
    """Two different emotions as canonical codes, or JobParamsError saying what is wrong."""
    if not pair or len(pair) != 2:
        raise JobParamsError("pair needs two emotions, e.g. --pair happy sad")
    try:
        a, b = (parse_label(p) for p in pair)
    except UnknownLabel as exc:
        raise JobParamsError(f"pair: {exc}") from None
    if a == b:
        raise JobParamsError("pair needs two different emotions")
    return a, b


def validate_cyclegan_params(params):
    dataset = dataset_resolve(name=params.get("dataset"))
    clean = {"dataset": dataset.name}
    a, b = parse_pair(params.get("pair"))
    clean["pair"] = [CLASSES[a], CLASSES[b]]
    profile = params.get("profile") or "cpu"
    if profile not in PROFILES:
        raise JobParamsError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    clean["profile"] = profile
    for key in ("epochs", "epochs_decay", "size", "batch_size", "seed"):
        if params.get(key) is not None:
            try:
                clean[key] = int(params[key])
            except (TypeError, ValueError):
                raise JobParamsError(f"{key} must be an integer, not {params[key]!r}") from None
            if clean[key] < (0 if key in ("epochs_decay", "seed") else 1):
                raise JobParamsError(f"{key} must be positive, not {clean[key]}")
    cfg = make_config(profile, **{k: clean.get(k) for k in ("epochs", "epochs_decay", "size", "batch_size", "seed")})
    if not 32 <= cfg.size <= 512 or cfg.size % 4:
        raise JobParamsError(f"size must be a multiple of 4 in 32-512, not {cfg.size}")
    for code in (a, b):
        n = len(domain_items(dataset, code))
        if n < MIN_DOMAIN:
            raise JobParamsError(f"only {n} train images labelled {CLASSES[code]} in {dataset.name}; need {MIN_DOMAIN}")
    return clean
