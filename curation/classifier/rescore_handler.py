"""The rescore job's worker side: refit, then rescore, as two child jobs (curation/classifier/rescore_params.py says
what a rescore is and holds its parameters). Only the job runner imports it (the registry names it)."""
from django.db import transaction

from curation.classifier.rescore_params import rescore_train_params


def rescore_job(ctx):
    """Refit, then rescore, each as a child job run to the end here (JobContext.children_run)."""
    p = ctx.params
    parts = (("train", "train_classifier", lambda: rescore_train_params(p["dataset"], p["folds"]),
              "out-of-fold models on the reviewed labels", 0.0, 0.7),
             ("score", "score_ambiguity", lambda: {"dataset": p["dataset"]}, "rescoring the queue", 0.7, 1.0))
    results = {}
    for key, kind, params, name, start, end in parts:
        if key not in ctx.state:
            with transaction.atomic():  # the child and the state that names it commit together
                child = ctx.child_enqueue(kind=kind, params=params())
                ctx.save_state({**ctx.state, key: child.pk})
        ctx.progress(start, name, force=True)
        (results[key],) = ctx.children_run([{"id": ctx.state[key], "n": 1, "name": name}], share=end, noun=name)
    return {"dataset": p["dataset"], "run": (results["train"] or {}).get("run"), "train_job": ctx.state["train"],
            "score_job": ctx.state["score"]}
