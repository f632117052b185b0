"""Reads for pages and the API."""
import unicodedata

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Prefetch, Q, Subquery, Value, When

from curation.classifier.predictions import run_image_ids_predicted
from curation.jobs.errors import JobParamsError
from curation.models import Dataset, DuplicateMember, Image, LabelChange, Run
from training.labels import CLASSES


def dataset_summaries():
    return Dataset.objects.annotate(
        n_images=Count("images"),
        n_train=Count("images", filter=Q(images__split=Image.Split.TRAIN)),
        n_val=Count("images", filter=Q(images__split=Image.Split.VAL)),
        n_test=Count("images", filter=Q(images__split=Image.Split.TEST)),
        n_reviewed=Count("images", filter=~Q(images__status=Image.Status.UNREVIEWED)),
    ).order_by("name")


class DatasetNotFound(Dataset.DoesNotExist):
    """No dataset has the name asked for; the message names it. A Dataset.DoesNotExist, so the API answers 404."""


def name_has_control_characters(name):
    """Whether a name a user sent holds a control character (NUL, newline, DEL, C1...). No dataset name has one,
    and PostgreSQL refuses NUL in text outright: such a name is "not found" before any query is made."""
    return any(unicodedata.category(c) == "Cc" for c in str(name))


def dataset_get(*, name):
    """The dataset named `name`: every lookup of a dataset by name (pages, API, commands, jobs) comes through here.
    Raises DatasetNotFound (also for a name with control characters, which no dataset has)."""
    if name_has_control_characters(name):
        raise DatasetNotFound(f"dataset {name!r} does not exist: dataset names have no control characters")
    try:
        return Dataset.objects.get(name=name)
    except Dataset.DoesNotExist:
        raise DatasetNotFound(f"dataset {name!r} does not exist") from None


class DatasetUnresolved(DatasetNotFound, JobParamsError):
    """dataset_resolve found no dataset: a DatasetNotFound (the API answers 404) and a JobParamsError (a job's
    parameters are refused before anything is queued; a command turns it into its error)."""


def dataset_resolve(*, name):
    """The dataset a command, a job's parameters or a benchmark names, or the only one when `name` is empty: the one
    resolver, with one message. Raises DatasetUnresolved naming the known datasets (the first 20)."""
    if name:
        try:
            return dataset_get(name=name)
        except DatasetNotFound as exc:
            raise DatasetUnresolved(f"{exc} (datasets: {_dataset_names() or 'none yet'})") from None
    names = list(Dataset.objects.values_list("name", flat=True)[:2])
    if len(names) == 1:
        return dataset_get(name=names[0])
    raise DatasetUnresolved("give --dataset NAME" + (f" (datasets: {_dataset_names()})" if names else
                                                     " (no dataset yet)"))


def _dataset_names(limit=20):
    names = list(Dataset.objects.order_by("name").values_list("name", flat=True)[:limit + 1])
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def dataset_counts(*, dataset):
    """Image counts of a dataset by split, current label (canonical names, every class listed) and status."""
    counts = {
        "split": {s: 0 for s in Image.Split.values},
        "label": {name: 0 for name in CLASSES},
        "status": {s: 0 for s in Image.Status.values},
    }
    rows = Image.objects.filter(dataset=dataset).values_list("split", "label", "status").annotate(n=Count("id"))
    for split, label, status, n in rows.order_by():
        counts["split"][split] += n
        counts["label"][CLASSES[label]] += n
        counts["status"][status] += n
    counts["total"] = sum(counts["status"].values())
    return counts


STATUS_ANY = "any"
# Every status but excluded: the images the dataset keeps ("after cleaning" on the dataset page and health report).
STATUS_KEPT = "kept"


def status_q(status):
    """The Q of a status filter: one status, "kept" (any but excluded), or None for "any" (and for no value)."""
    if not status or status == STATUS_ANY:
        return None
    if status == STATUS_KEPT:
        return ~Q(status=Image.Status.EXCLUDED)
    return Q(status=status)


# A test image (not excluded) in a find_duplicates group with a train or val image that is not excluded: a leak
# (curation/duplicates/leaks.py counts the same images as leaked_test_images).
_LEAK_COPY = (DuplicateMember.objects.filter(dataset=OuterRef("dataset"), group=OuterRef("duplicate_member__group"),
                                             image__split__in=(Image.Split.TRAIN, Image.Split.VAL))
              .exclude(image__status=Image.Status.EXCLUDED))
# signal filter: which scoring flag an image must carry (ssim: the SSIM rule, classifier: cleanlab's label issue).
SIGNALS = {
    "ssim": Q(flagged=True),
    "classifier": Q(classifier_flagged=True),
    "both": Q(flagged=True, classifier_flagged=True),
    "either": Q(flagged=True) | Q(classifier_flagged=True),
    # cleanlab Datalab on the out-of-fold embeddings: a label its neighbours disagree with, an outlier, an image
    # with a near-duplicate set.
    "datalab_label": Q(datalab_label_issue=True),
    "datalab_outlier": Q(datalab_outlier=True),
    "datalab_duplicate": ~Q(datalab_near_duplicates=[]),
    # find_duplicates (perceptual hash and colour): an image in a near-duplicate group; a test image that leaks.
    "duplicate": Q(duplicate_member__isnull=False),
    "test_leak": Q(split=Image.Split.TEST) & ~Q(status=Image.Status.EXCLUDED) & Q(Exists(_LEAK_COPY)),
}


def images_filter(qs, *, split=None, label=None, original_label=None, status=None, flagged=None, min_suspicion=None,
                  max_suspicion=None, signal=None, run=None, predicted=None, suggested=None, selection=None,
                  image=None):
    """Narrow an Image queryset by any of the given values (labels as codes); None or empty means any, and so does
    status "any" ("kept": any but excluded). signal: one of SIGNALS. min/max_suspicion: inclusive bounds (unscored
    images fall outside). suggested: the classifier's suggested label at the latest scoring. selection (an
    ImageSelection): only its images (the dataset map's lasso). image: only the image of that id (a map's point).

    run (a Run): only that run's test images (curation.classifier.predictions), and then `label` is the label the
    image had when the run trained and `predicted` what the run predicted, as on a confusion matrix's cell."""
    if split:
        qs = qs.filter(split=split)
    if run is not None:
        qs = qs.filter(pk__in=run_image_ids_predicted(run, true_label=label, predicted=predicted))
    elif label is not None:
        qs = qs.filter(label=label)
    if original_label is not None:
        qs = qs.filter(original_label=original_label)
    if status_q(status) is not None:
        qs = qs.filter(status_q(status))
    if suggested is not None:
        qs = qs.filter(classifier_suggested_label=suggested)
    if flagged is not None:
        qs = qs.filter(flagged=flagged)
    if signal:
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
        qs = qs.filter(SIGNALS[signal])
    if min_suspicion is not None:
        qs = qs.filter(suspicion__gte=min_suspicion)
    if max_suspicion is not None:
        qs = qs.filter(suspicion__lte=max_suspicion)
    if selection is not None:
        qs = qs.filter(selections=selection)
    if image is not None:
        qs = qs.filter(pk=image)
    return qs


def images_list(*, dataset=None, **filters):
    """Images filtered by any of the given values (labels as codes, dataset by name), by id. Raises
    DatasetNotFound for a dataset that does not exist (an empty list would read as an empty dataset)."""
    qs = Image.objects.select_related("dataset", "reviewed_by")
    if dataset:
        qs = qs.filter(dataset=dataset_get(name=dataset))
    return images_filter(qs, **filters).order_by("id")


def image_get(*, image_id):
    """Raises Image.DoesNotExist, its message naming the image (the API's 404 says it)."""
    try:
        return Image.objects.select_related("dataset", "reviewed_by").get(pk=image_id)
    except Image.DoesNotExist:
        raise Image.DoesNotExist(f"image {image_id} does not exist") from None


def image_detail(*, image_id):
    """One image with its label history (oldest first). Raises Image.DoesNotExist, its message naming the image."""
    history = LabelChange.objects.select_related("user").order_by("id")
    try:
        return (Image.objects.select_related("dataset", "reviewed_by")
                .prefetch_related(Prefetch("label_changes", queryset=history)).get(pk=image_id))
    except Image.DoesNotExist:
        raise Image.DoesNotExist(f"image {image_id} does not exist") from None


def dataset_export_rows(*, dataset, status=None, exclude_excluded=False, chunk_size=2000):
    """(path, split, original_label, label, status, ambiguity, suspicion, reviewed_by_id, reviewed_at, then the
    Datalab fields of curation.export.DATALAB_COLUMNS, then the find_duplicates group or None) per image, streamed
    from the database in chunks (a server-side cursor on PostgreSQL), never loaded whole."""
    qs = Image.objects.filter(dataset=dataset)
    if status:
        qs = qs.filter(status=status)
    if exclude_excluded:
        qs = qs.exclude(status=Image.Status.EXCLUDED)
    return qs.order_by("id").values_list(
        "path", "split", "original_label", "label", "status", "ambiguity", "suspicion", "reviewed_by_id",
        "reviewed_at", "datalab_label_quality", "datalab_label_issue", "datalab_outlier_score", "datalab_outlier",
        "datalab_near_duplicate_score", "datalab_near_duplicates", "duplicate_member__group",
    ).iterator(chunk_size=chunk_size)


def dataset_reviewer_names(*, dataset):
    """{user id: username} of the users whose decisions stand on the dataset's images (a few, not one per row)."""
    reviewers = Image.objects.filter(dataset=dataset, reviewed_by__isnull=False).values("reviewed_by")
    return dict(get_user_model().objects.filter(pk__in=reviewers).values_list("pk", "username"))


def runs_list(*, dataset=None):
    """Runs, newest first; raises DatasetNotFound for a dataset that does not exist."""
    qs = Run.objects.select_related("dataset", "created_by")
    if dataset:
        qs = qs.filter(dataset=dataset_get(name=dataset))
    return qs.order_by("-id")


def run_get(*, run_id):
    """Raises Run.DoesNotExist, its message naming the run (the API's 404 says it)."""
    try:
        return Run.objects.select_related("dataset", "created_by").get(pk=run_id)
    except Run.DoesNotExist:
        raise Run.DoesNotExist(f"run {run_id} does not exist") from None


def dataset_queue_run(*, dataset_id):
    """The run whose probabilities (and embeddings) feed the dataset's queue: the imported model a curator picked
    (Dataset.queue_run) while it is finished and has probabilities, else the latest finished product run with
    out-of-fold probabilities; None when there is neither. Scoring, the review card and CROWDLAB all read the model
    through this, so they never disagree about which one it is. One query."""
    pinned = Subquery(Dataset.objects.filter(pk=dataset_id).values("queue_run_id")[:1])
    return (Run.objects.filter(dataset_id=dataset_id, status=Run.Status.SUCCEEDED).exclude(oof_file="")
            .filter(Q(pk=pinned) | Q(source=Run.Source.TRAINED))
            .annotate(pinned=Case(When(pk=pinned, then=Value(1)), default=Value(0), output_field=IntegerField()))
            .order_by("-pinned", "-id").first())
