"""Generate, then retrain: the retrain form's answer to an augmented retrain of a dataset with no generated images.

A `generate_retrain` job runs its parts as children (Job.parent), one stage after the other: a generate_images job
for each of the dataset's trained CycleGAN pairs (the latest of each pair, as generate_images picks it), then, only
when every one of them succeeded and made images, the train_classifier job of the retrain. A generation that fails
or is cancelled fails or cancels this job, and the retrain is never queued; cancelling this job cancels the part
that runs. The retrain's parameters are validated when the chain is queued (all but the generated images, which do
not exist yet) and again, by its own validator, when it is queued after the generation.

This module holds the job's parameters (no torch: web processes import it); the worker's side is
generate_retrain_handler.py.
"""
from curation.classifier.params import validate_train_params
from curation.classifier.preview import dataset_generators
from curation.gans.generate_params import validate_generate_params
from curation.jobs.errors import JobParamsError
from curation.selectors import dataset_resolve

DEFAULT_N = 100  # images per generator direction


def generate_retrain_parts(dataset, generators, n):
    """The generate_images parts' parameters: n images per direction of each generator."""
    return [{"dataset": dataset, "pair": g["pair"], "n": n} for g in generators]


def validate_generate_retrain_params(params):
    unknown = set(params) - {"dataset", "n", "train"}
    if unknown:
        raise JobParamsError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    dataset = dataset_resolve(name=params.get("dataset"))
    n = params.get("n", DEFAULT_N)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise JobParamsError(f"n must be a whole number of images per generator direction (at least 1), not {n!r}")
    train = params.get("train")
    if not isinstance(train, dict):
        raise JobParamsError("train must be the retrain's parameters (an object)")
    if train.get("dataset", dataset.name) != dataset.name:
        raise JobParamsError(f"the retrain's dataset {train.get('dataset')!r} is not the chain's {dataset.name!r}")
    # Everything but the generated images, which the chain makes first.
    clean = validate_train_params({**train, "dataset": dataset.name, "augmented": False})
    if clean.get("folds"):
        raise JobParamsError("a retrain after generation trains no out-of-fold models: folds must be 0")
    generators = dataset_generators(dataset)
    if not generators:
        raise JobParamsError(f"dataset {dataset.name!r} has no trained CycleGAN pair to generate images with: "
                             f"train one first")
    if not any(g["generates"] for g in generators):
        raise JobParamsError(f"every generator of dataset {dataset.name!r} failed its quality check (the classifier "
                             f"does not call its outputs the target class), so generating would add no images")
    for generate in generate_retrain_parts(dataset.name, generators, n):
        validate_generate_params(generate)
    return {"dataset": dataset.name, "n": n, "train": {**clean, "augmented": True}}
