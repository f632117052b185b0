"""A dataset's health report on one page: the estimated share of wrong labels, the confused class pairs, the issues
scoring and find_duplicates found, class balance and what cleaning has done so far.

Computed once here (dataset_health_report) and rendered three ways: the page /datasets/<name>/health/, the API's
GET /api/datasets/<name>/health/ and the self-contained HTML file of `manage.py health_report`.

Every count is one filter of the review grid (curation.selectors.images_filter, the grid's own filter), counted by
that filter and linked with it, so the link shows the images the figure counts. The grid, like the queue, leaves
out what the viewer cannot review there: images they skipped, disputed images, images another reviewer holds, and
in a pass over decided images (any status but unreviewed) those whose decision is the viewer's own. The class
balance and the cleaning counts are the dataset page's (curation.web.selectors.dataset.dataset_overview), the
leaks its find_duplicates panel's (curation.duplicates.leaks.dataset_leaks), the audit's estimate the random audit's
(curation.review.audit.dataset_audit_estimates)."""
import copy
from collections import Counter
from urllib.parse import urlencode

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from curation.duplicates.leaks import dataset_leaks
from curation.models import Image, Job
from curation.review.audit import dataset_audit_estimates
from curation.selectors import STATUS_ANY, STATUS_KEPT, images_filter
from curation.web.selectors.dataset import dataset_overview
from training.labels import CLASSES

LABEL_KEYS = ("label", "original_label", "suggested", "predicted")
ALL = STATUS_ANY

# The issues the report counts: (key, name, what it means, the grid filter). Each is counted twice: every image
# the filter finds (any status), and those still unreviewed (the grid's default status: what is left to look at).
ISSUES = (
    ("label_issues", "label issues (cleanlab)",
     "train images whose label cleanlab's out-of-fold check finds likely wrong (at the latest scoring)",
     {"signal": "classifier"}),
    ("neighbour_issues", "label issues (Datalab's neighbours)",
     "train images whose nearest neighbours in the model's embedding carry another label", {"signal": "datalab_label"}),
    ("outliers", "outliers (Datalab)", "train images far from every other image in the model's embedding",
     {"signal": "datalab_outlier"}),
    ("near_duplicates", "near-duplicates (find_duplicates)",
     "images in a group of near copies (perceptual hash confirmed by a colour thumbnail)", {"signal": "duplicate"}),
    ("datalab_near_duplicates", "near-duplicates (Datalab)",
     "train images with a near-duplicate set in the model's embedding", {"signal": "datalab_duplicate"}),
    ("test_leaks", "test leaks", "test images (not excluded) with a near copy in train or val that is not excluded: "
     "test figures come out too high", {"signal": "test_leak"}),
)


def grid_url(dataset, filters):
    """The review grid's address for `filters` (images_filter's keys, labels as codes) on `dataset`; the status
    always said (the grid's own default is unreviewed)."""
    query = {"dataset": dataset.name, "status": Image.Status.UNREVIEWED.value}
    for key, value in filters.items():
        if value is None:
            continue
        query[key] = CLASSES[value] if key in LABEL_KEYS else value
    return f"{reverse('review_grid')}?{urlencode(query)}"


def _count(dataset, filters):
    """How many of the dataset's images the grid's filter finds (status unreviewed unless the filter says)."""
    return images_filter(Image.objects.filter(dataset=dataset),
                         **{"status": Image.Status.UNREVIEWED, **filters}).count()


def _figure(dataset, n, filters):
    filters = {"status": Image.Status.UNREVIEWED.value, **filters}
    return {"n": n, "url": grid_url(dataset, filters), "filters": _named(filters)}


def _named(filters):
    return {k: CLASSES[v] if k in LABEL_KEYS and v is not None else v for k, v in filters.items()}


def _pct(x):
    return f"{100 * x:.1f} %"


def latest_scoring(dataset):
    """The latest finished score_ambiguity job of the dataset ({"id", "finished_at"}), or None."""
    return (Job.objects.filter(kind="score_ambiguity", status=Job.Status.SUCCEEDED, result__dataset=dataset.name)
            .order_by("-id").values("id", "finished_at").first())


def _wrong_labels(dataset, audit, label_issues, scoring):
    """The estimated share of wrong labels: the random audit's when it rests on enough decisions, else cleanlab's
    from the latest scoring (the share of scored train images it flags; prune by noise rate flags as many images as
    its estimate of the noise), else none. Says which."""
    overall = audit["overall"]
    audit_words = (f"the random audit has {overall['n']} of the {audit['min_decisions']} decisions an estimate "
                   "needs" if not overall["enough"] else "")
    if overall["enough"]:
        return {
            "source": "audit", "estimate": overall["estimate"], "low": overall["low"], "high": overall["high"],
            "n": overall["n"], "wrong": overall["wrong"],
            "text": (f"{_pct(overall['estimate'])} (95 % Wilson interval {_pct(overall['low'])} to "
                     f"{_pct(overall['high'])}), from {overall['n']} random audit decisions"),
            "url": f"{reverse('dataset', args=[dataset.name])}#audit", "figure": None,
        }
    scored = Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, label_quality__isnull=False).count()
    if scored:
        n = label_issues["all"]["n"]
        return {
            "source": "cleanlab", "estimate": n / scored, "low": None, "high": None, "n": scored, "wrong": n,
            "text": (f"{_pct(n / scored)}: cleanlab flags {n} of the {scored} scored train images "
                     f"(scoring job {scoring['id'] if scoring else '?'}); {audit_words or 'no random audit yet'}, "
                     "so this is the classifier's estimate, not a measurement"),
            "url": label_issues["all"]["url"], "figure": label_issues["all"],
        }
    return {"source": None, "estimate": None, "low": None, "high": None, "n": 0, "wrong": 0,
            "text": f"not known yet: the dataset has not been scored and {audit_words or 'the audit is empty'}",
            "url": None, "figure": None}


def _suggested_confusion(dataset):
    """The unreviewed label issues (cleanlab) by given label against the classifier's suggested label, each cell a
    grid filter. One grouped query."""
    rows = (Image.objects.filter(dataset=dataset, status=Image.Status.UNREVIEWED, classifier_flagged=True,
                                 classifier_suggested_label__isnull=False)
            .values_list("label", "classifier_suggested_label").annotate(n=Count("id")).order_by())
    counts = Counter({(g, s): n for g, s, n in rows})
    out, pairs = [], []
    for g, given in enumerate(CLASSES):
        cells = []
        for s, suggested in enumerate(CLASSES):
            filters = {"signal": "classifier", "label": g, "suggested": s, "status": Image.Status.UNREVIEWED.value}
            cell = {"column": suggested, "code": s, "n": counts.get((g, s), 0), "filters": filters}
            cells.append(cell)
            if s != g and cell["n"]:
                pairs.append({"given": given, "suggested": suggested, **cell})
        out.append({"code": g, "name": given, "cells": cells, "total": sum(c["n"] for c in cells)})
    pairs.sort(key=lambda p: -p["n"])
    return {"rows": out, "columns": list(CLASSES), "total": sum(counts.values()), "pairs": pairs}


def linked_matrix(dataset, matrix):
    """A copy of a confusion matrix (review_confusion, _suggested_confusion) whose cells, pairs and other entries
    carry the grid's `url` for their filter, and their filter with labels named."""
    matrix = copy.deepcopy(matrix)
    for row in matrix["rows"]:
        for cell in row["cells"]:
            cell["url"] = grid_url(dataset, cell["filters"])
            cell["filters"] = _named(cell["filters"])
    for pair in matrix["pairs"]:
        pair["url"] = grid_url(dataset, pair["filters"])
        pair["filters"] = _named(pair["filters"])
    for entry in matrix.get("other", []):
        entry["url"] = grid_url(dataset, entry["filters"])
        entry["filters"] = _named(entry["filters"])
    return matrix


def dataset_health_report(*, dataset, overview=None, now=None):
    """The health report of `dataset` as a JSON-able dict (see the module docstring); `overview`: the dataset
    page's dataset_overview, where the caller has it already."""
    overview = overview or dataset_overview(dataset=dataset)
    audit = dataset_audit_estimates(dataset)
    leaks = dataset_leaks(dataset)
    scoring = latest_scoring(dataset)
    issues = []
    for key, name, what, filters in ISSUES:
        issues.append({
            "key": key, "name": name, "what": what,
            "all": _figure(dataset, _count(dataset, {**filters, "status": ALL}), {**filters, "status": ALL}),
            "unreviewed": _figure(dataset, _count(dataset, filters), filters),
        })
    by_key = {i["key"]: i for i in issues}
    status = overview["status"]
    cleaning = {"total": overview["total"], "reviewed": overview["reviewed"],
                "reviewed_share": overview["reviewed_share"]}
    for st in (Image.Status.UNREVIEWED, Image.Status.CONFIRMED, Image.Status.RELABELLED, Image.Status.EXCLUDED):
        cleaning[st.value] = _figure(dataset, status[st], {"status": st.value})
    classes = []
    for c in overview["per_class"]:
        classes.append({
            "name": c["name"], "change": c["change"],
            "before": _figure(dataset, c["before"], {"original_label": c["code"], "status": ALL}),
            "after": _figure(dataset, c["after"], {"label": c["code"], "status": STATUS_KEPT}),
        })
    return {
        "dataset": dataset.name,
        "made_at": (now or timezone.now()).isoformat(timespec="seconds"),
        "images": overview["total"], "split": overview["split"],
        "scored_by_job": scoring["id"] if scoring else None,
        "duplicates_checked_by_job": leaks["checked"]["id"] if leaks["checked"] else None,
        "wrong_labels": _wrong_labels(dataset, audit, by_key["label_issues"], scoring),
        "issues": issues,
        "reviewed_confusion": linked_matrix(dataset, overview["confusion"]),
        "suggested_confusion": linked_matrix(dataset, _suggested_confusion(dataset)),
        "classes": classes,
        "cleaning": cleaning,
        "grid_leaves_out": ("The grid leaves out images you skipped, disputed images, images another reviewer "
                            "holds, and, when it shows decided images, those whose decision is your own."),
    }
