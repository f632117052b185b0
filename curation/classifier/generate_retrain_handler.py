"""The generate_retrain job's worker side: the generate_images parts, then the retrain, as child jobs
(curation/classifier/generate_retrain_params.py says what the chain is and holds its parameters). Only the job
runner imports it (the registry names it)."""
from django.db import transaction

from curation.classifier.generate_retrain_params import generate_retrain_parts
from curation.classifier.preview import dataset_generators
from curation.jobs.errors import JobParamsError
from curation.models import GeneratedImage, Image
from curation.selectors import dataset_resolve


def generate_retrain_job(ctx):
    p = ctx.params
    if "generate" not in ctx.state:
        dataset = dataset_resolve(name=p["dataset"])
        generators = [g for g in dataset_generators(dataset) if g["generates"]]
        with transaction.atomic():  # the children and the state that names them commit together
            ids = [ctx.child_enqueue(kind="generate_images", params=params).pk
                   for params in generate_retrain_parts(dataset.name, generators, p["n"])]
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
