"""Threshold calibration from reviews: how many of the images a threshold flags did reviewers find wrong.

Over the reviewed train images of a dataset (confirmed, relabelled or excluded; "wrong" = relabelled or excluded),
for each threshold on the SSIM ambiguity (the published rule's flag) and on the suspicion (which orders the review
queue), per class and overall: how many reviewed images it flags, the share of them that were wrong (precision)
and the share of the wrong ones it flags (recall). And per class, the lowest threshold whose precision reaches the
one asked for: the threshold that keeps the most wrong labels while a flag is still right that often.

A class is the label an image came with (original_label): the label it was scored and flagged under. Reviewers
see the most suspicious images first, so the reviewed images are not a random sample: precision measured on them
is that of the images people have looked at, which is what a threshold is chosen for.
"""
import math

import numpy as np

from curation.models import Image, Job
from training.labels import CLASSES

SIGNALS = ("ambiguity", "suspicion")
# Too few decisions make a precision that one more review would overturn: a class needs this many reviewed
# images, this many of them wrong, before a threshold is suggested, and a suggested threshold flags this many.
MIN_REVIEWED = 20
MIN_WRONG = 5
MIN_FLAGGED = 5
GRID_QUANTILES = np.arange(0, 100, 5)
REVIEWED = (Image.Status.CONFIRMED, Image.Status.RELABELLED, Image.Status.EXCLUDED)
WRONG = (Image.Status.RELABELLED, Image.Status.EXCLUDED)


def _floor3(values):
    # Thresholds a person can type; flooring keeps every image the exact value flagged still flagged.
    return np.floor(np.asarray(values, dtype=np.float64) * 1000 + 1e-9) / 1000


def _ratio(a, b):
    return round(a / b, 4) if b else None


def _at(scores, wrong, t):
    flagged = scores >= t  # NaN (no score) is never flagged
    n, hits = int(flagged.sum()), int((flagged & wrong).sum())
    return {"flagged": n, "wrong": hits, "precision": _ratio(hits, n), "recall": _ratio(hits, int(wrong.sum()))}


def _suggest(scores, wrong, precision):
    """The lowest threshold with precision >= the one asked for, flagging at least MIN_FLAGGED reviewed images."""
    reviewed, n_wrong = len(scores), int(wrong.sum())
    if reviewed < MIN_REVIEWED or n_wrong < MIN_WRONG:
        return {"threshold": None, "reason": f"needs {MIN_REVIEWED} reviewed images with {MIN_WRONG} relabelled or "
                                             f"excluded; has {reviewed} with {n_wrong}"}
    scored = ~np.isnan(scores)
    if not scored.any():
        return {"threshold": None, "reason": "no reviewed image has this score"}
    best = None
    for t in np.unique(_floor3(scores[scored])):
        m = _at(scores, wrong, t)
        if m["flagged"] < MIN_FLAGGED:
            continue
        if m["wrong"] >= precision * m["flagged"] - 1e-9:  # exact, not the rounded share
            return {"threshold": float(t), **m, "reason": ""}
        if best is None or m["precision"] > best[1]["precision"]:
            best = (float(t), m)
    if best is None:
        return {"threshold": None, "reason": f"no threshold flags {MIN_FLAGGED} reviewed images"}
    return {"threshold": None, "reason": f"no threshold reaches precision {precision:g} with {MIN_FLAGGED} or more "
                                         f"flagged (best {best[1]['precision']:g} at {best[0]:g})"}


def _grid(scores):
    scored = scores[~np.isnan(scores)]
    if not len(scored):
        return []
    return [float(t) for t in np.unique(_floor3(np.percentile(scored, GRID_QUANTILES)))]


def current_thresholds(dataset):
    """The thresholds of the dataset's latest finished scoring job (the defaults if it was never scored)."""
    job = (Job.objects.filter(kind="score_ambiguity", status=Job.Status.SUCCEEDED, params__dataset=dataset.name)
           .order_by("-id").only("params").first())
    params = job.params if job else {}
    return {"job": job.pk if job else None, "threshold": params.get("threshold", 0.85),
            "class_thresholds": params.get("class_thresholds") or {}}


def threshold_calibration(*, dataset, precision=0.5, thresholds=None):
    """The calibration table and suggested thresholds of one dataset (see the module's docstring).

    precision: the share of flagged images that should be wrong, in (0, 1]. thresholds: the thresholds to tabulate,
    {"ambiguity": [...], "suspicion": [...]} or a list for the ambiguity; by default 20 quantiles of each signal
    over the reviewed images, with the suggested thresholds and (for the ambiguity) those in use. Raises ValueError on a precision outside (0, 1].
    """
    if precision is None:
        precision = 0.5
    precision = float(precision)
    if not (math.isfinite(precision) and 0 < precision <= 1):
        raise ValueError(f"precision must be a number in (0, 1], not {precision}")
    if thresholds is not None and not isinstance(thresholds, dict):
        thresholds = {"ambiguity": thresholds}
    thresholds = thresholds or {}
    rows = list(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, status__in=REVIEWED)
                .values_list("original_label", "status", "ambiguity", "suspicion"))
    label = np.array([r[0] for r in rows], dtype=int)
    wrong = np.array([r[1] in WRONG for r in rows], dtype=bool)
    values = {s: np.array([np.nan if r[2 + k] is None else r[2 + k] for r in rows], dtype=np.float64)
              for k, s in enumerate(SIGNALS)}
    scopes = [("all", np.ones(len(rows), dtype=bool))]
    scopes += [(CLASSES[c], label == c) for c in sorted(set(label.tolist()))]

    current = current_thresholds(dataset)
    report = {"dataset": dataset.name, "precision": precision, "reviewed": len(rows), "wrong": int(wrong.sum()),
              "needs": f"{MIN_REVIEWED} reviewed images, {MIN_WRONG} of them relabelled or excluded, and a "
                       f"threshold that flags {MIN_FLAGGED} or more",
              "current": current, "suggested": {}}
    for scope, mask in scopes:
        entry = {"reviewed": int(mask.sum()), "wrong": int(wrong[mask].sum())}
        for signal in SIGNALS:
            s = _suggest(values[signal][mask], wrong[mask], precision)
            entry.update({f"{signal}_{k}": s.get(k) for k in ("threshold", "precision", "recall", "flagged", "reason")})
        report["suggested"][scope] = entry
    for signal in SIGNALS:
        if signal in thresholds:
            grid = sorted({float(t) for t in thresholds[signal]})
        else:  # quantiles, and the thresholds suggested and in use, so that the table shows their rows
            grid = _grid(values[signal])
            if grid:
                grid += [e[f"{signal}_threshold"] for e in report["suggested"].values()]
                if signal == "ambiguity":
                    grid += [current["threshold"], *current["class_thresholds"].values()]
            grid = sorted({float(t) for t in grid if t is not None})
        report[signal] = [{"threshold": t, "label": scope, **_at(values[signal][mask], wrong[mask], t)}
                          for t in grid for scope, mask in scopes]
    report.update(_command(dataset, report))
    return report


def _command(dataset, report):
    """The score_ambiguity line (and its job params) that applies the suggested ambiguity thresholds."""
    overall = report["suggested"]["all"]["ambiguity_threshold"]
    per_class = {scope: e["ambiguity_threshold"] for scope, e in report["suggested"].items()
                 if scope != "all" and e["ambiguity_threshold"] is not None}
    if overall is None and not per_class:
        return {"command": None, "job_params": None}
    threshold = overall if overall is not None else report["current"]["threshold"]
    line = f"python manage.py score_ambiguity --dataset {dataset.name} --threshold {threshold:g}"
    line += "".join(f" --class-threshold {name}={t:g}" for name, t in per_class.items())
    return {"command": line,
            "job_params": {"dataset": dataset.name, "threshold": threshold, "class_thresholds": per_class}}
