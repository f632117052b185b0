"""The threshold calibration page (/datasets/<name>/calibration/): what the reviews say about the flag thresholds,
the thresholds it would suggest per class, and the score_ambiguity line that applies them."""
import json
import math

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from curation.scoring.calibration import SIGNALS, threshold_calibration
from curation.selectors import DatasetNotFound, dataset_get

DEFAULT_PRECISION = 0.5
SIGNAL_TITLES = {"ambiguity": "SSIM ambiguity (the flag)", "suspicion": "Suspicion (the review queue's order)"}


def _precision(raw):
    """(precision, error message or None) from the query string."""
    if raw in (None, ""):
        return DEFAULT_PRECISION, None
    try:
        value = float(raw)
    except ValueError:
        return None, f"precision must be a number in (0, 1], not {raw!r}"
    if not (math.isfinite(value) and 0 < value <= 1):
        return None, f"precision must be a number in (0, 1], not {raw}"
    return value, None


def _pivot(rows):
    """Rows {threshold, label, ...} -> (labels, [(threshold, [cell per label])]) for a threshold x class table."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    by = {(r["threshold"], r["label"]): r for r in rows}
    thresholds = sorted({r["threshold"] for r in rows})
    return labels, [(t, [by.get((t, label)) for label in labels]) for t in thresholds]


@login_required
@require_GET
def calibration_page(request, name):
    try:
        dataset = dataset_get(name=name)
    except DatasetNotFound as exc:
        raise Http404(str(exc)) from None
    precision, error = _precision(request.GET.get("precision"))
    context = {"dataset": dataset, "error": error, "precision": request.GET.get("precision", DEFAULT_PRECISION)}
    if error:
        return render(request, "curation/calibration.html", context, status=400)
    report = threshold_calibration(dataset=dataset, precision=precision)
    context.update(
        report=report, precision=precision,
        tables=[{"signal": s, "title": SIGNAL_TITLES[s], "labels": _pivot(report[s])[0], "rows": _pivot(report[s])[1]}
                for s in SIGNALS],
        job_params=json.dumps(report["job_params"]) if report["job_params"] else None,
    )
    return render(request, "curation/calibration.html", context)
