"""Generate, then retrain: the retrain form's answer to an augmented retrain of a dataset with no generated images.

A `generate_retrain` job runs its parts as children (Job.parent), one stage after the other: a generate_images job
for each of the dataset's trained CycleGAN pairs (the latest of each pair, as generate_images picks it), then, only
when every one of them succeeded and made images, the train_classifier job of the retrain. A generation that fails
or is cancelled fails or cancels this job, and the retrain is never queued; cancelling this job cancels the part
that runs. The retrain's parameters are validated when the chain is queued (all but the generated images, which do
not exist yet) and again, by its own validator, when it is queued after the generation.
"""
from django.db import transaction

from curation.classifier.params import validate_train_params
from curation.classifier.preview import dataset_generators
from curation.gans.generate import validate_generate_params
from curation.jobs.errors import JobParamsError
from curation.models import GeneratedImage, Image
from curation.selectors import dataset_resolve

DEFAULT_N = 100  # images per generator direction


def _generate_params(dataset, generators, n):
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
    for generate in _generate_params(dataset.name, generators, n):
        validate_generate_params(generate)
    return {"dataset": dataset.name, "n": n, "train": {**clean, "augmented": True}}


def generate_retrain_job(ctx):
    p = ctx.params
    if "generate" not in ctx.state:
        dataset = dataset_resolve(name=p["dataset"])
        generators = [g for g in dataset_generators(dataset) if g["generates"]]
        with transaction.atomic():  # the children and the state that names them commit together
            ids = [ctx.child_enqueue(kind="generate_images", params=params).pk
                   for params in _generate_params(dataset.name, generators, p["n"])]
            ctx.save_state({**ctx.state, "generate": ids})
    ids = ctx.state["generate"]
    ctx.progress(0.0, "generating images", force=True)
    results = ctx.children_run([{"id": pk, "n": 1, "name": "generating images"} for pk in ids], share=0.3,
                               noun="generate_images")
    if "train" not in ctx.state:
        made = GeneratedImage.objects.filter(gan__dataset__name=p["dataset"], source_image__split=Image.Split.TRAIN) \
            .exclude(source_image__status=Image.Status.EXCLUDED).count()
        if not made:
            raise JobParamsError(f"the generation made no images for dataset {p['dataset']!r} (its generators "
                                 f"failed their quality check), so the augmented retrain was not started")
        with transaction.atomic():
            child = ctx.child_enqueue(kind="train_classifier", params=p["train"])
            ctx.save_state({**ctx.state, "train": child.pk})
    ctx.progress(0.3, "retraining", force=True)
    (trained,) = ctx.children_run([{"id": ctx.state["train"], "n": 1, "name": "retraining"}], share=1.0,
                                  noun="retrain")
    return {"dataset": p["dataset"], "generate_jobs": ids, "generated": [r.get("generated") for r in results],
            "train_job": ctx.state["train"], "run": (trained or {}).get("run")}
