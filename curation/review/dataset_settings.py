"""A dataset's review settings, the writes: how many reviewers decide each image (Dataset.reviews_required) and the
curators' guidelines per class (Dataset.guidelines). The dataset page's forms and the review_settings command call
these, so both accept and refuse the same values with the same words."""
from django.db import transaction

from curation.models import MAX_REVIEWS_REQUIRED, Dataset, Run
from training.labels import CLASSES

# Longest guideline text for one class: a few sentences a reviewer reads beside the image, not a manual.
GUIDELINE_MAX_CHARS = 1000


class GuidelinesConflict(ValueError):
    """Another curator changed a class's guideline since this one's editor was shown: nothing was written."""

    def __init__(self, classes):
        self.classes = classes
        super().__init__(f"the guideline{'s' if len(classes) > 1 else ''} for {', '.join(classes)} changed since "
                         f"you opened this page (someone else saved one); nothing was saved. Your text is still "
                         f"in the form: compare it with the saved one and save again")


def reviews_required_check(value):
    """The number of reviews per image as an int, or ValueError naming the setting and the bad value."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ValueError(f"reviews per image must be a whole number 1-{MAX_REVIEWS_REQUIRED}, "
                             f"not {value!r}") from None
    if not 1 <= value <= MAX_REVIEWS_REQUIRED:
        raise ValueError(f"reviews per image must be 1-{MAX_REVIEWS_REQUIRED}, not {value}")
    return value


def dataset_reviews_required_set(*, dataset_id, reviews_required):
    """Set how many reviewers must decide each image of the dataset (1: the first decision applies; K > 1: K votes,
    unanimous ones apply, others go to the curators' disputes). Returns the value set. Raises ValueError (a value
    outside 1..MAX_REVIEWS_REQUIRED) or Dataset.DoesNotExist."""
    value = reviews_required_check(reviews_required)
    if not Dataset.objects.filter(pk=dataset_id).update(reviews_required=value):
        raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
    return value


def guidelines_check(guidelines):
    """{class name: text} with the texts stripped and empty ones left out; ValueError naming a bad class or text."""
    out = {}
    for name, text in guidelines.items():
        if name not in CLASSES:
            raise ValueError(f"no class {name!r}; the classes are {', '.join(CLASSES)}")
        text = (text or "").strip()
        if len(text) > GUIDELINE_MAX_CHARS:
            raise ValueError(f"the guideline for {name} is {len(text)} characters; at most {GUIDELINE_MAX_CHARS}")
        if text:
            out[name] = text
    return out


def dataset_guidelines_set(*, dataset_id, guidelines, seen):
    """Write a curator's edits of the dataset's class guidelines and return them all ({class name: text}).

    guidelines: {class name: text} as submitted; seen: the guidelines as the curator's editor showed them. Only the
    classes whose text the curator changed are written, so two curators editing different classes both keep their
    work; if a class they changed was also changed by someone else since `seen`, nothing is written and
    GuidelinesConflict names the classes. An empty text removes the class's guideline. Raises ValueError (bad class,
    too long) or Dataset.DoesNotExist."""
    submitted = guidelines_check(guidelines)
    seen = guidelines_check(seen)
    changed = [name for name in CLASSES if name in guidelines and submitted.get(name) != seen.get(name)]
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().only("pk", "guidelines").get(pk=dataset_id)
        stored = dict(dataset.guidelines or {})
        conflicts = [name for name in changed if stored.get(name) != seen.get(name)
                     and stored.get(name) != submitted.get(name)]
        if conflicts:
            raise GuidelinesConflict(conflicts)
        for name in changed:
            if name in submitted:
                stored[name] = submitted[name]
            else:
                stored.pop(name, None)
        if changed:
            Dataset.objects.filter(pk=dataset_id).update(guidelines=stored)
    return stored


def queue_run_check(*, dataset_id, value):
    """The run a curator picked to feed the dataset's queue: a finished imported model of this dataset with
    probabilities (its id, or "run:ID"), or None for the default (empty, "latest", "default": the latest product run
    with out-of-fold probabilities). ValueError naming a bad pick."""
    raw = "" if value is None else str(getattr(value, "pk", value)).strip()
    if raw.lower() in ("", "latest", "default", "none"):
        return None
    pk = raw[4:] if raw.lower().startswith("run:") else raw
    if not pk.isdigit():
        raise ValueError(f"the model feeding the queue is an imported model's run id (or latest), not {raw!r}")
    run = Run.objects.filter(pk=int(pk), dataset_id=dataset_id).first()
    if run is None:
        raise ValueError(f"run {pk} is not a run of this dataset")
    if run.source != Run.Source.IMPORTED:
        raise ValueError(f"run {pk} is a product run: the queue follows the latest product run unless you pick an "
                         f"imported model (leave it at latest)")
    if run.status != Run.Status.SUCCEEDED or not run.oof_file:
        raise ValueError(f"run {pk} is {run.status} and has no probabilities to score with")
    return run.pk


def dataset_queue_run_set(*, dataset_id, queue_run):
    """Pick the model that feeds the dataset's queue (an imported model's run id) or go back to the default (None,
    "latest": the latest product run with out-of-fold probabilities). The queue follows at the next scoring. Returns
    the run id set or None. Raises ValueError (named) or Dataset.DoesNotExist."""
    value = queue_run_check(dataset_id=dataset_id, value=queue_run)
    if not Dataset.objects.filter(pk=dataset_id).update(queue_run_id=value):
        raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
    return value
