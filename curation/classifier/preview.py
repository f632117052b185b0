"""What a retrain will do to its train split, counted before anything is queued: the one home of the preview that
`manage.py train_classifier` / `retrain` print and the retrain form on the jobs page shows.

The counts are those of `select_training_data` itself, called with the run's own parameters (the job calls it the
same way, `_selection` in curation/classifier/handler.py), so the preview is the run's selection as the data are now.
Beside the counts, the preview says where a choice would do nothing or cannot run, in `problems` (codes with their
figures); the command and the page each word them in their own terms (`command_words`, the template
curation/pages/_retrain_preview.html):

- `doubtful_flags_none`: --reduced's doubtful rule flags no unreviewed train image, so it drops only excluded images;
  the figures say how many each other rule would drop;
- `no_generated`: --augmented, but the dataset has no generated images; the figures say whether it has generators
  and whether their quality check lets them generate (`generators`).

`default_doubtful` is the rule the retrain form starts on: the published SSIM rule where it flags images of this
dataset, else `none` (drop only what reviewers excluded). Not the classifier's flags: cleanlab flags far more images
than are wrong (1,152 of the demo's 2,800 train images, 41 %, against 16 % wrong), and dropping them unreviewed cost
11.9 points on the demo after a 300-decision review (62.3 % against run 1's 74.1 %, where `none` gained 3.0:
77.1 %) and 1.3-14.5 points in docs/results.md's benchmarks. The command keeps `ssim` as its default (the
published experiment's contract) and says in its preview when that rule flags nothing.
"""
from django.db.models import Count, Q

from curation.classifier.relabels import describe_rule, relabel_rule
from curation.classifier.selection import DOUBTFUL, select_training_data
from curation.gans.snapshots import DIRECTIONS, direction_name, pair_generators, snapshot_quality
from curation.models import Dataset, Image
from curation.scoring.fusion import generator_works
from training.labels import CLASSES

RULE_NAMES = {"ssim": "the SSIM rule", "classifier": "the classifier's flags (cleanlab)",
              "either": "either flag", "none": "no rule"}


def selection_for(dataset, p):
    """(the run's selection, its calibrated-relabel rule or None) for params p, as the data are now: exactly what
    the training job selects (it calls this)."""
    rule = relabel_rule(dataset, p["relabel_precision"]) if p.get("relabel_precision") else None
    sel = select_training_data(dataset=dataset, reduced=p["reduced"], augmented=p["augmented"],
                               doubtful=p.get("doubtful") or "ssim", relabel_above=rule and rule["threshold"])
    return sel, rule


def doubtful_counts(dataset, *, with_train=False):
    """{rule: unreviewed train images it flags as doubtful} for every DOUBTFUL rule (and "train": the train split's
    size, with_train), in one query. `dataset`: a Dataset or its name."""
    where = {"dataset__name": dataset} if isinstance(dataset, str) else {"dataset": dataset}
    aggregates = {}
    for rule, flags in DOUBTFUL.items():
        if flags:
            q = Q(pk__in=[])
            for flag in flags:
                q |= Q(**{flag: True})
            aggregates[rule] = Count("id", filter=q & Q(status=Image.Status.UNREVIEWED))
    if with_train:
        aggregates["train"] = Count("id")
    counts = Image.objects.filter(split=Image.Split.TRAIN, **where).aggregate(**aggregates)
    return {**counts, "none": 0}


def default_doubtful(dataset, counts=None):
    """The doubtful rule a retrain form starts on: ssim where it flags images of this dataset, else none (the
    reviewers' exclusions and relabels only; why not the classifier's flags: the module's docstring)."""
    counts = doubtful_counts(dataset) if counts is None else counts
    return "ssim" if counts["ssim"] else "none"


def with_default_doubtful(params):
    """params with the retrain form's doubtful rule (default_doubtful of params' dataset) where they name none: the
    jobs API's `retrain` starts as the form does. An unknown or missing dataset is left for the validator to name."""
    if params.get("doubtful") in (None, "") and params.get("dataset"):
        dataset = Dataset.objects.filter(name=params["dataset"]).first()
        if dataset is not None:
            params["doubtful"] = default_doubtful(dataset)
    return params


def api_preview(dataset, params):
    """retrain_preview for a retrain's validated job params, as the jobs API's dry run returns it: each problem with
    its `text` (the command's words: its flags are the API's parameter names)."""
    preview = retrain_preview(dataset, {key: params[key] for key in
                                        ("reduced", "augmented", "doubtful", "relabel_precision")
                                        if params.get(key) is not None})
    for problem in preview["problems"]:
        problem["text"] = command_words(problem).strip().removeprefix("note: ")
    return preview


def dataset_generators(dataset):
    """The dataset's CycleGANs that generation uses (one per pair: pair_generators), each {"gan", "pair": [a, b],
    "directions": [{"name", "check": passed|failed|unchecked, "target_rate", "source_target_rate"}], "generates":
    whether any direction would generate without include_failing}."""
    out = []
    for gan in pair_generators(dataset):
        _, quality = snapshot_quality(gan)
        directions = []
        for direction in DIRECTIONS:
            q = quality.get(direction) or {}
            works = generator_works(q)
            directions.append({"name": direction_name(gan, direction),
                               "check": {None: "unchecked", True: "passed"}.get(works, "failed"),
                               "target_rate": q.get("target_rate"), "source_target_rate": q.get("source_target_rate")})
        out.append({"gan": gan.pk, "pair": [CLASSES[gan.source_label], CLASSES[gan.target_label]],
                    "directions": directions, "generates": any(d["check"] != "failed" for d in directions)})
    return out


def retrain_preview(dataset, p):
    """What a retrain with params p (reduced, augmented, doubtful, relabel_precision) does to the train split now:
    {"counts": the run's selection counts, "doubtful", "rule_name", "relabel_rule", "doubtful_counts",
    "problems": [{"code", ...figures}], "generators"}."""
    p = {"reduced": False, "augmented": False, "doubtful": "ssim", "relabel_precision": None, **p}
    sel, rule = selection_for(dataset, p)
    counts = doubtful_counts(dataset)
    problems, generators = [], None
    doubtful = p.get("doubtful") or "ssim"
    if p["reduced"] and doubtful != "none" and not counts[doubtful]:
        others = {r: n for r, n in counts.items() if r not in (doubtful, "none") and n}
        problems.append({"code": "doubtful_flags_none", "rule": doubtful, "others": others})
    if p["augmented"] and not sel.counts["generated"]:
        generators = dataset_generators(dataset)
        problems.append({"code": "no_generated", "generators": generators,
                         "generates": any(g["generates"] for g in generators)})
    return {"dataset": dataset.name, "counts": sel.counts, "reduced": p["reduced"], "augmented": p["augmented"],
            "doubtful": doubtful, "rule_name": RULE_NAMES[doubtful], "relabel_rule": rule,
            "relabel_text": describe_rule(rule) if rule else "",
            "doubtful_counts": counts, "problems": problems, "generators": generators}


def command_words(problem):
    """A preview problem as the command line says it (flags and command names)."""
    if problem["code"] == "doubtful_flags_none":
        others = ", ".join(f"--doubtful {r} would drop {n:,}" for r, n in problem["others"].items())
        return (f"  note: --doubtful {problem['rule']} flags no unreviewed train image of this dataset, so --reduced "
                f"drops only excluded images" + (f" ({others})" if others else ""))
    if problem["code"] == "no_generated":
        if not problem["generators"]:
            return "  note: --augmented needs generated images: train_cyclegan a pair, then generate_images"
        if not problem["generates"]:
            return ("  note: --augmented needs generated images, and every generator failed its quality check: "
                    "generate_images --include-failing makes some anyway")
        return "  note: --augmented needs generated images: run generate_images first"
    raise ValueError(problem["code"])
