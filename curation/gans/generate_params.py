"""The generate_images job's parameters, checked before anything is queued (no torch: web processes import it). The
worker's side is curation/gans/generate_handler.py."""
from curation.gans.params import parse_pair
from curation.gans.snapshots import pair_generator
from curation.jobs.errors import JobParamsError
from curation.selectors import dataset_resolve
from training.labels import CLASSES


def find_gan(dataset, a, b):
    """The CycleGAN the pair uses (the one a curator chose, else the newest finished one), in either orientation;
    returns (gan, direction for a -> b)."""
    gan = pair_generator(dataset, a, b)
    if gan is None:
        return None, None
    return gan, "AB" if gan.source_label == a else "BA"


def validate_generate_params(params):
    dataset = dataset_resolve(name=params.get("dataset"))
    a, b = parse_pair(params.get("pair"))
    gan, _ = find_gan(dataset, a, b)
    if gan is None:
        raise JobParamsError(f"no trained CycleGAN for {CLASSES[a]} and {CLASSES[b]} in {dataset.name}; "
                             f"run train_cyclegan --pair {CLASSES[a]} {CLASSES[b]} first")
    try:
        n = int(params.get("n", 0))
    except (TypeError, ValueError):
        raise JobParamsError(f"n must be an integer, not {params.get('n')!r}") from None
    if n < 1:
        raise JobParamsError("n must be at least 1 (images per direction)")
    include_failing = params.get("include_failing", False)
    if not isinstance(include_failing, bool):
        raise JobParamsError(f"include_failing must be true or false, not {include_failing!r}")
    return {"dataset": dataset.name, "pair": [CLASSES[a], CLASSES[b]], "n": n, "gan": gan.pk,
            "seed": int(params.get("seed", 0)), "include_failing": include_failing}
