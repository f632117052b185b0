"""Review rounds in the product: refit the out-of-fold models on the labels as reviewed so far, then rescore the
queue, so that the next decisions start from a better ranking.

A `rescore` job runs two parts as its children (Job.parent), one after the other: a train_classifier with K folds
on the current labels (relabels applied, excluded images dropped, nothing else: --doubtful none; the settings of
the dataset's latest run otherwise), then score_ambiguity. Reviewers keep working while it runs; the queue's order
changes when the scores land.

A curator turns it on per dataset ("rescore after every N decisions", Dataset.rescore_every: the dataset page or
`review_settings --rescore-every N`); after every N decisions since the last rescore was queued, the next decision
queues one, unless one is queued or running already (curation/jobs/rounds.py).

This module holds the job's parameters and the setting (no torch: web processes import it); the worker's side is
rescore_handler.py.
"""
from curation.classifier.params import validate_train_params, with_latest_run_settings
from curation.jobs.errors import JobParamsError
from curation.models import Dataset
from curation.selectors import dataset_resolve

DEFAULT_FOLDS = 3
MAX_RESCORE_EVERY = 100_000


def rescore_every_check(value):
    """None (off) or the number of decisions between rescores as an int; ValueError naming a bad one."""
    if value in (None, "", "off"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ValueError(f"rescore every must be a whole number of decisions (at least 1) or off, not {value!r}") \
            from None
    if not 1 <= n <= MAX_RESCORE_EVERY:
        raise ValueError(f"rescore every must be 1-{MAX_RESCORE_EVERY:,} decisions (or off), not {n}")
    return n


def dataset_rescore_every_set(*, dataset_id, rescore_every):
    """Turn review rounds on (a number of decisions) or off (None) for a dataset; returns the value set. Raises
    ValueError (named) or Dataset.DoesNotExist."""
    value = rescore_every_check(rescore_every)
    if not Dataset.objects.filter(pk=dataset_id).update(rescore_every=value):
        raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
    return value


def rescore_train_params(dataset, folds):
    """The train_classifier part's parameters: K folds on the labels as reviewed, the latest run's settings."""
    return with_latest_run_settings({"dataset": dataset, "folds": folds, "reduced": True, "doubtful": "none"})


def validate_rescore_params(params):
    unknown = set(params) - {"dataset", "folds"}
    if unknown:
        raise JobParamsError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    dataset = dataset_resolve(name=params.get("dataset"))
    folds = params.get("folds", DEFAULT_FOLDS)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 10:
        raise JobParamsError(f"folds must be a whole number 2-10 (out-of-fold models), not {folds!r}")
    validate_train_params(rescore_train_params(dataset.name, folds))  # refused now, in the train job's own words
    return {"dataset": dataset.name, "folds": folds}
