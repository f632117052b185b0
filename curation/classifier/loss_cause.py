"""Why a retrain got worse: the training-set change that most likely caused a significant loss against a baseline.

Read from the two runs' own selection counts (what each recorded it trained on, curation/classifier/selection.py):
generated images added, unreviewed images dropped as doubtful, images excluded, reviewers' relabels and calibrated
relabels, each as the run's count minus the baseline's. The most likely cause is the biggest of these changes (on a
tie, in that order: generated images first, whose labels are the target class whatever the generator made, then
images dropped unseen). It is a reading of the record, not a measured effect: the run comparison words it as "most
likely" and offers the retrain without that change, or the comparison with a run that already left it out.
Nothing is stored.
"""
from curation.classifier.preview import RULE_NAMES, dataset_generators
from curation.models import GeneratedImage, Run

# (change, selection count, how the retrain without it differs from the run)
CHANGES = (
    ("generated", "generated", {"augmented": False}),
    ("doubtful", "dropped_flagged_unconfirmed", {"doubtful": "none"}),
    ("excluded", "dropped_excluded", {"reduced": False}),
    ("relabelled", "relabelled", {"reduced": False}),
    ("calibrated", "relabelled_calibrated", {"relabel_precision": None}),
)


def _generator_words(dataset):
    """The quality of the generators whose images the dataset holds, in words."""
    used = set(GeneratedImage.objects.filter(gan__dataset=dataset).values_list("gan_id", flat=True).distinct())
    directions = [d for g in dataset_generators(dataset) if g["gan"] in used for d in g["directions"]]
    rates = sorted(d["target_rate"] for d in directions if d["target_rate"] is not None)
    checks = {d["check"] for d in directions}
    if not rates:
        return "generators whose quality was never checked (no classifier when they trained)"
    span = f"{rates[0]:.0%}" if rates[0] == rates[-1] else f"{rates[0]:.0%}-{rates[-1]:.0%}"
    how = ("passed their quality check" if checks == {"passed"} else
           "include ones that failed their quality check" if "failed" in checks else "were partly unchecked")
    return (f"generators {how} with {span} target rates (the share of their images the classifier calls the target "
            f"class)")


def loss_cause(base, run):
    """{"change", "n", "text", "without": the run's settings without that change, "compare": a finished run of the
    dataset already trained that way or None} for the training-set change that most likely made `run` worse than
    `base`; None when the two selections record no change."""
    sb, sr = base.selection or {}, run.selection or {}
    found = [(change, (sr.get(key) or 0) - (sb.get(key) or 0), without) for change, key, without in CHANGES]
    found = [item for item in found if item[1] > 0]
    if not found:
        return None
    change, n, without = max(found, key=lambda item: item[1])  # max keeps the first of equals: CHANGES' order
    if change == "generated":
        text = f"{n:,} generated images added: {_generator_words(run.dataset)}"
    elif change == "doubtful":
        rule = RULE_NAMES.get(sr.get("doubtful"), "the doubtful rule")
        text = f"{n:,} unreviewed images dropped as doubtful by {rule}, without a reviewer's look"
    elif change == "excluded":
        text = f"{n:,} images reviewers excluded dropped"
    elif change == "relabelled":
        text = f"{n:,} reviewers' relabels applied"
    else:
        text = f"{n:,} unreviewed images trained on the classifier's suggestion (calibrated relabels)"
    settings = {"reduced": run.reduced, "augmented": run.augmented, "doubtful": sr.get("doubtful") or "ssim",
                **without}
    if not settings["reduced"]:
        settings["doubtful"] = "ssim"
    return {"change": change, "n": n, "text": text, "without": settings, "compare": _run_without(run, base, settings)}


def _run_without(run, base, settings):
    """The newest finished run of the dataset (not these two) trained as `settings` say, or None."""
    for other in (Run.objects.filter(dataset=run.dataset, status=Run.Status.SUCCEEDED, source=Run.Source.TRAINED,
                                     reduced=settings["reduced"], augmented=settings["augmented"])
                  .exclude(pk__in=(run.pk, base.pk)).exclude(test_metrics=None).order_by("-id")[:20]):
        doubtful = (other.selection or {}).get("doubtful") or "ssim"
        if not settings["reduced"] or doubtful == settings["doubtful"]:
            return other
    return None
