"""The train_classifier job's parameters: defaults, validation and the preview a command shows, checked before anything
is queued by the commands, the forms, the API and job_enqueue alike. Django and config dataclasses only (numpy for
GLC's check): no torch, since web processes import it. The worker's side is curation/classifier/handler.py."""
from collections import Counter
from pathlib import Path

import numpy as np
from django.conf import settings

from curation.classifier.preview import command_words, retrain_preview, selection_for
from curation.classifier.relabels import (
    RelabelTargetError,
    check_precision_target,
    describe_rule,
)
from curation.classifier.selection import DOUBTFUL
from curation.classifier.ssl_init import KIND as PRETRAIN_KIND
from curation.classifier.ssl_init import check_ssl_fits, ssl_job_weights
from curation.importers.roots import ImportPathRefused, import_path_resolve
from curation.jobs.errors import JobParamsError
from curation.models import GeneratedImage, Image, Job, Run
from curation.review.audit import audit_sample_decided
from curation.selectors import DatasetUnresolved, dataset_get, dataset_queue_run, dataset_resolve
from training.config import (  # dataclasses only: no torch in web processes
    ROBUST_METHODS,
    SMALL_SPLIT_DEFAULTS,
    TrainConfig,
)
from training.labels import CLASSES

# The job's parameters that are TrainConfig fields of the same name; their defaults are TrainConfig's, so the two
# cannot drift apart. "patience" is TrainConfig's early_stopping_patience; the rest choose the data, not the training.
TRAIN_KEYS = ("arch", "size", "epochs", "batch_size", "seed", "lr", "monitor", "robust")
TRAIN_DEFAULTS = TrainConfig()
# "patience" and "min_epochs" None: chosen by the run from its validation split and train size (handler.py:
# choose_validation); the keys of training.config.SMALL_SPLIT_DEFAULTS None: chosen by the run from its train split's
# size (handler.py: choose_size_defaults: TrainConfig's default, or the small-split one).
SIZE_KEYS = tuple(key for key in TRAIN_KEYS if key in SMALL_SPLIT_DEFAULTS)
DEFAULTS = {**{key: None if key in SIZE_KEYS else getattr(TRAIN_DEFAULTS, key) for key in TRAIN_KEYS},
            "patience": None, "min_epochs": None,
            "folds": 0, "reduced": False, "augmented": False, "doubtful": "ssim", "relabel_precision": None,
            "init": None, "derived_from": None, "group": ""}


# What a retrain (`manage.py retrain`, the web form) takes from the dataset's latest finished run unless given.
RETRAIN_INHERITS = ("arch", "size", "epochs", "batch_size", "lr", "seed", "monitor", "robust")


def with_latest_run_settings(params):
    """params with the settings of the latest finished run (of params["dataset"]; of any dataset when none is
    named, whose dataset it then takes too) wherever params leaves them out; the new run derives from it (its
    collapse warning and report compare with it). Imported predictions are no run of the product's classifier: they
    have no settings to inherit."""
    runs = Run.objects.filter(status=Run.Status.SUCCEEDED, source=Run.Source.TRAINED)
    if params.get("dataset"):
        runs = runs.filter(dataset__name=params["dataset"])
    latest = runs.select_related("dataset").first()
    if latest is not None:
        # A value the latest run took from its train split's size is chosen again for the new run's train split.
        by_size = ((latest.selection or {}).get("size_defaults") or {}).get("chosen") or {}
        for key in RETRAIN_INHERITS:
            if key in latest.config and key not in by_size:
                params.setdefault(key, latest.config[key])
        params.setdefault("dataset", latest.dataset.name)
        params.setdefault("derived_from", latest.pk)  # the run this one derives from: its report compares with it
    return with_default_start(params, latest)


def with_default_start(params, latest=None):
    """params with a start where it names none (init empty): default_start's, or SCRATCH for a random one; params
    whose dataset does not resolve are left as they are (validation names the problem). The command,
    form and API of train_classifier and of a retrain (with the run it inherits from, `latest`) take it."""
    if params.get("init") not in (None, ""):
        return params
    try:  # the dataset named, or the only one (as validation resolves it)
        dataset = dataset_resolve(name=params.get("dataset")).name
    except DatasetUnresolved:
        return params
    params["init"] = default_start(dataset, latest, params.get("arch") or TRAIN_DEFAULTS.arch,
                                   params.get("size") or TRAIN_DEFAULTS.size) or SCRATCH
    return params


# A run's start when none is given: for a retrain the latest run's, else (for any training) the dataset's newest
# self-supervised pretraining that fits the classifier, else a random one. Issue 31 measured the self-supervised
# start ahead of a random one on average on noisy, reviewed and true labels, never behind by more than the noise,
# and the queue's out-of-fold models from it ahead in all four paired measurements (docs/results.md, "Two seeds at
# 3,000 faces" and "The queue from the self-supervised start"). SCRATCH names a random start where one would
# otherwise be picked; a job's own params (a benchmark's, a chain's) without init start at random.
SCRATCH = "scratch"


def default_start(dataset_name, latest, arch, size):
    """The start a run of dataset_name (arch at size px) takes when none is given: the start of `latest` (the
    run it inherits from), else the newest pretrain_ssl job of the dataset that succeeded, kept its weights and
    pretrained this classifier ("ssl:ID"); None for a random start. A start that no longer resolves (its weights
    gone) is passed over: the run records the start it took, and the command's preview prints it."""
    inherited = ((latest.selection or {}).get("init") or {}).get("from") if latest is not None else None
    pretrainings = (Job.objects.filter(kind=PRETRAIN_KIND, status=Job.Status.SUCCEEDED, params__dataset=dataset_name)
                    .order_by("-id").values_list("pk", flat=True))
    for candidate in ([inherited] if inherited else []) + [f"ssl:{pk}" for pk in pretrainings]:
        try:
            return resolve_start(candidate, arch, size)
        except JobParamsError:
            continue
    return None


def resolve_start(value, arch, size):
    """resolve_init(value), and for "ssl:ID" the check that the pretraining trained this classifier (arch at size
    px); JobParamsError names a start the run cannot take."""
    start = resolve_init(value)
    if start and start.startswith("ssl:"):
        check_ssl_fits(ssl_job_weights(int(start[4:]))[0], arch, size)
    return start


def validate_train_params(params):
    clean = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    unknown = set(clean) - set(DEFAULTS) - {"dataset"}
    if unknown:
        raise JobParamsError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    clean["dataset"] = dataset_resolve(name=clean.get("dataset")).name
    for key in ("size", "epochs", "batch_size", "folds", "seed", "patience", "min_epochs", "derived_from"):
        if clean[key] is None and key in ("patience", "min_epochs", "derived_from", *SIZE_KEYS):
            continue
        try:
            clean[key] = int(clean[key])
        except (TypeError, ValueError):
            raise JobParamsError(f"{key} must be an integer, not {clean[key]!r}") from None
    if clean["patience"] is not None and clean["patience"] < 0:
        raise JobParamsError(f"patience must be 0 (no early stopping) or more epochs, not {clean['patience']}")
    if clean["min_epochs"] is not None and clean["epochs"] is not None and not 0 <= clean["min_epochs"] <= clean["epochs"]:
        raise JobParamsError(f"min_epochs must be 0-{clean['epochs']} (the epochs), not {clean['min_epochs']}")
    clean["group"] = str(clean["group"] or "")
    if len(clean["group"]) > 32 or not all(c.isalnum() or c in "-_" for c in clean["group"]):
        raise JobParamsError(f"group must be up to 32 letters, digits, '-' or '_', not {clean['group'][:40]!r}")
    clean["reduced"], clean["augmented"] = bool(clean["reduced"]), bool(clean["augmented"])
    if clean["doubtful"] not in DOUBTFUL:
        raise JobParamsError(f"doubtful must be one of {', '.join(DOUBTFUL)}, not {clean['doubtful']!r}")
    clean["init"] = resolve_start(clean["init"], clean["arch"], clean["size"])
    try:
        clean["relabel_precision"] = check_precision_target(clean["relabel_precision"])
    except RelabelTargetError as exc:
        raise JobParamsError(str(exc)) from None
    if clean["derived_from"] is not None and not Run.objects.filter(
            pk=clean["derived_from"], dataset__name=clean["dataset"], status=Run.Status.SUCCEEDED).exists():
        raise JobParamsError(f"derived_from {clean['derived_from']!r} is not a finished run of dataset "
                             f"'{clean['dataset']}'")
    if clean["robust"] not in ROBUST_METHODS:
        raise JobParamsError(f"robust must be one of {', '.join(ROBUST_METHODS)}, not {clean['robust']!r}")
    if clean["robust"] == "glc":
        glc_trusted(dataset_get(name=clean["dataset"]))  # refuses a dataset with nothing to estimate from
    if clean["folds"] == 1 or not 0 <= clean["folds"] <= 10:
        raise JobParamsError(f"folds must be 0 (none) or 2-10, not {clean['folds']}")
    try:
        train_config(clean).validate()
    except ValueError as exc:
        raise JobParamsError(str(exc)) from None
    if clean["augmented"] and not GeneratedImage.objects.filter(gan__dataset__name=clean["dataset"]).exists():
        raise JobParamsError(f"--augmented: dataset {clean['dataset']!r} has no generated images yet; "
                             f"run generate_images first (a generator that failed its quality check generates nothing "
                             f"unless --include-failing)")
    check_dataset_can_train(clean)
    return clean


# GLC (training/robust.py) estimates how labels go wrong from the random audit's reviewed train images alone when
# there are at least this many of them (a simple random sample: an unbiased estimate), else from every reviewed train
# image (the queue reviews the most suspicious first, so that estimate overstates the noise).
GLC_AUDIT_MIN = 40


def glc_trusted(dataset):
    """(the run whose out-of-fold probabilities GLC reads, {image id: reviewed label}, "audit" or "reviewed"): the
    reviewed train images GLC estimates its corruption matrix from, those of the random audit's sample when it has
    GLC_AUDIT_MIN of them, else all, each with out-of-fold probabilities in the dataset's queue run
    (curation.selectors.dataset_queue_run: the model trained on the noisy labels that feeds the queue).
    JobParamsError, naming the problem, when there is nothing to estimate from. numpy only (the web process
    validates with it)."""
    reviewed = dict(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN,
                                         status__in=(Image.Status.CONFIRMED, Image.Status.RELABELLED))
                    .values_list("id", "label"))
    if not reviewed:
        raise JobParamsError(f"robust glc estimates how labels go wrong from reviewed labels, and dataset "
                             f"{dataset.name!r} has no train image a reviewer confirmed or relabelled: review some "
                             f"first (the random audit's sample gives the best estimate)")
    source = dataset_queue_run(dataset_id=dataset.pk)
    if source is None:
        raise JobParamsError(f"robust glc reads the out-of-fold probabilities of a run trained on the noisy labels, "
                             f"and dataset {dataset.name!r} has none: run train_classifier --folds 5 first")
    with np.load(Path(settings.MEDIA_ROOT) / source.oof_file) as oof:
        covered = set(oof["ids"].tolist())
    reviewed = {pk: label for pk, label in reviewed.items() if pk in covered}
    if not reviewed:
        raise JobParamsError(f"robust glc: none of dataset {dataset.name!r}'s reviewed train images has out-of-fold "
                             f"probabilities in run {source.pk}: train_classifier --folds 5 on the current images "
                             f"first")
    sample = audit_sample_decided(dataset=dataset, split=Image.Split.TRAIN)
    audited = {pk: label for pk, label in reviewed.items() if pk in sample}
    if len(audited) >= GLC_AUDIT_MIN:
        return source, audited, "audit"
    return source, reviewed, "reviewed"


def resolve_init(value):
    """A pretrained start as the job keeps it: None (also for "scratch" or "none": a random start), "run:ID" (an
    earlier run's saved model), "ssl:ID" (the backbone a pretrain_ssl job that succeeded saved:
    curation/classifier/ssl_init.py) or the real path of a weights file below the import roots (FER_IMPORT_ROOTS:
    the worker reads the server's disk, so the same rule as imports). JobParamsError names a bad one. The file is
    read by the job, never by a web process (no torch)."""
    if value in (None, ""):
        return None
    raw = str(value).strip()
    if raw.lower() in (SCRATCH, "none"):
        return None
    if raw.startswith("run:"):
        pk = raw[4:]
        run = Run.objects.filter(pk=int(pk), status=Run.Status.SUCCEEDED).exclude(checkpoint="").first() \
            if pk.isdigit() else None
        if run is None:
            raise JobParamsError(f"init {raw!r}: no finished run {pk} with a saved model (run:ID names one)")
        return f"run:{run.pk}"
    if raw.startswith("ssl:"):
        if not raw[4:].isdigit():
            raise JobParamsError(f"init {raw!r}: ssl:ID names a pretrain_ssl job by its number")
        return f"ssl:{ssl_job_weights(int(raw[4:]))[0].pk}"
    try:
        path = import_path_resolve(raw)
    except ImportPathRefused:
        raise JobParamsError(f"init {raw!r} is not an existing weights file below the import roots "
                             f"(FER_IMPORT_ROOTS), nor run:ID; place the file there") from None
    if not path.is_file():
        raise JobParamsError(f"init {raw!r} is a folder; give the weights file (a torch.save'd state dict)")
    return str(path)


def check_dataset_can_train(p):
    """Refuse, before anything is queued, a run the dataset cannot support: no train images (left, after
    --reduced), no test images to score the run on, or folds that the train split cannot fill (stratified folds
    need as many images as folds, in at least one class: of the training targets the folds are split on).

    The answer is the run's own selection (`selection_for`, which the job selects with): no second count of the
    rule, so the calibrated relabels --reduced keeps, and the generated images --augmented adds, count here too."""
    name = p["dataset"]
    sel, _ = selection_for(dataset_get(name=name), p)
    if not sel.test:
        raise JobParamsError(f"dataset {name!r} has no test-split images: a run is scored on the test split, so "
                             f"import some images with split 'test' first")
    if not sel.train:
        excluded, unconfirmed = sel.counts["dropped_excluded"], sel.counts["dropped_flagged_unconfirmed"]
        if p["reduced"] and excluded + unconfirmed:
            raise JobParamsError(f"dataset {name!r} has no train images left after --reduced drops its {excluded} "
                                 f"excluded and {unconfirmed} unconfirmed doubtful images")
        raise JobParamsError(f"dataset {name!r} has no train-split images")
    folds = p["folds"]
    if folds and len(sel.train) < folds:
        raise JobParamsError(f"dataset {name!r} has {len(sel.train)} train images, fewer than the {folds} folds")
    if folds:
        per_class = Counter(item.target for item in sel.train)
        biggest = max(per_class, key=lambda c: (per_class[c], -c))
        if per_class[biggest] < folds:
            raise JobParamsError(
                f"no class of dataset {name!r}'s train split has {folds} images (the most is {per_class[biggest]}, "
                f"in {CLASSES[biggest]}), and {folds} folds need one: use fewer folds")


def training_preview(p):
    """Lines saying what each rule of a run (validated params p) does to its train split, counted now, before
    anything is queued: the command prints them, and the run records the same counts in its selection
    (curation/classifier/preview.py counts them; the retrain form shows the same preview in the page's words)."""
    preview = retrain_preview(dataset_get(name=p["dataset"]), p)
    c, rule = preview["counts"], preview["relabel_rule"]
    lines = [f"{preview['dataset']}: trains on {c['train']:,} images (val {c['val']:,}, test {c['test']:,})",
             f"  trusted: {c['trusted']:,} images a reviewer confirmed or relabelled (a robust method never "
             f"down-weights them)",
             f"  starts from: {start_words(p['init'], p['dataset'])}"]
    if p["reduced"]:
        lines.append(f"  reduced: drops {c['dropped_excluded']:,} excluded and {c['dropped_flagged_unconfirmed']:,} "
                     f"unreviewed images flagged by {preview['doubtful']}; {c['relabelled']:,} reviewers' "
                     f"relabels")
    if rule:
        lines.append(f"  {describe_rule(rule)}")
    if p["augmented"]:
        lines.append(f"  augmented: adds {c['generated']:,} generated images")
    if p["robust"] == "glc":
        source, labels, origin = glc_trusted(dataset_get(name=p["dataset"]))
        which = "the random audit" if origin == "audit" else "every reviewed image: the audit has too few"
        lines.append(f"  glc: corrects the loss by how labels go wrong, estimated from {len(labels):,} reviewed train "
                     f"images ({which}) and run {source.pk}'s out-of-fold probabilities")
    lines.extend(command_words(problem) for problem in preview["problems"])
    return lines


def start_words(init, dataset):
    """A run's start (validated init) in a reader's words."""
    if not init:
        return (f"a random start (python manage.py pretrain_ssl --dataset {dataset} trains a start on the "
                f"dataset's own images, which later runs take; --init run:ID or a file also starts from weights)")
    if init.startswith("ssl:"):
        return (f"{init}, the backbone pretrain_ssl job {init[4:]} trained on this dataset's images (--init scratch: "
                f"a random start)")
    if init.startswith("run:"):
        return f"{init}, run {init[4:]}'s model"
    return f"the weights file {init}"


def train_config(p):
    """The run's TrainConfig from validated params p; a field p leaves unset (SIZE_KEYS) keeps TrainConfig's default
    until choose_size_defaults sees the train split."""
    patience = TRAIN_DEFAULTS.early_stopping_patience if p.get("patience") is None else p["patience"]
    given = {key: p[key] for key in TRAIN_KEYS if p.get(key) is not None}
    if "lr" in given:
        given["lr"] = float(given["lr"])
    return TrainConfig(**given, early_stopping_patience=patience, min_epochs=p.get("min_epochs") or 0,
                       num_classes=len(CLASSES))
