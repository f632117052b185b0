"""Reads for the runs page and its comparison: a dataset's runs, and runs side by side with deltas, their paired
tests (McNemar, randomisation, Holm's adjustment), curves, confusion matrices and train-snapshot differences."""
import csv
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from curation.classifier.collapse import collapse_warning
from curation.classifier.loss_cause import loss_cause
from curation.classifier.predictions import read_probabilities, run_predictions_path
from curation.classifier.seeds import group_summary
from curation.duplicates.leaks import dataset_leaks, runs_test_split_notes
from curation.models import Run
from training.labels import CLASSES
from training.significance import ALPHA, paired_test, randomisation_test, wilson_interval


def dataset_runs(*, dataset):
    """The dataset's runs, newest first, each with `previous_id`: the run before it (None for the first),
    `accuracy` and `macro_f1` from its test metrics (None while it trains, or where a run recorded only some), and
    `collapse`: the warning of a run that looks like a collapse (curation/classifier/collapse.py), else None."""
    runs = list(Run.objects.filter(dataset=dataset).select_related("created_by", "derived_from").order_by("-id"))
    for run, older in zip(runs, [*runs[1:], None]):
        run.previous_id = older.pk if older else None
        metrics = run.test_metrics or {}
        run.accuracy, run.macro_f1 = metrics.get("accuracy"), metrics.get("macro_f1")
        run.collapse = collapse_warning(run)
    return runs


class CompareError(ValueError):
    """The ids of a comparison do not name two or more runs."""


def parse_run_ids(values):
    """Run ids from `?ids=1,2,3` and/or repeated `?ids=1&ids=2` (the runs page's checkboxes), order kept,
    duplicates dropped. Raises CompareError naming the bad value."""
    ids = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if not (part.isascii() and part.isdigit()) or len(part) > 18:  # 18 digits fit a bigint
                raise CompareError(f"run ids are whole numbers; got {part[:30]!r}")
            if int(part) not in ids:
                ids.append(int(part))
    if len(ids) < 2:
        raise CompareError("pick two or more runs to compare (?ids=1,2)")
    return ids


def _snapshot_rows(run):
    """The run's train snapshot as {"images": {id: label}, "generated": {id, ...}} (ids and labels as the CSV's
    strings: nothing needs converting to be compared), or None when the file is missing."""
    if not run.snapshot_file:
        return None
    path = Path(settings.MEDIA_ROOT) / run.snapshot_file
    if not path.exists():
        return None
    images, generated = {}, set()
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        split, source, pk, label = (header.index(c) for c in ("split", "source", "id", "label"))
        for row in reader:
            if row[split] != "train":
                continue
            if row[source] == "image":
                images[row[pk]] = row[label]
            else:
                generated.add(row[pk])
    return {"images": images, "generated": generated}


def snapshot_diff(base, other):
    """How a run's train snapshot differs from the baseline's: images dropped and added, relabelled (same image,
    other label, with the most common label pairs), generated images added and removed. None if either is missing."""
    if base is None or other is None:
        return None
    base_images, images = base["images"], other["images"]
    relabels = Counter((base_images[k], images[k]) for k in base_images.keys() & images.keys()
                       if base_images[k] != images[k])
    return {
        "images_dropped": len(base_images.keys() - images.keys()),
        "images_added": len(images.keys() - base_images.keys()),
        "relabelled": sum(relabels.values()),
        "relabel_pairs": [{"from": a, "to": b, "n": n} for (a, b), n in relabels.most_common(8)],
        "generated_added": len(other["generated"] - base["generated"]),
        "generated_removed": len(base["generated"] - other["generated"]),
    }


def _snapshot_exists(run):
    return bool(run.snapshot_file) and (Path(settings.MEDIA_ROOT) / run.snapshot_file).exists()


def snapshot_diff_cache_key(base_hash, run_hash):
    """Where the difference between two label snapshots is cached, by their hashes."""
    return f"fer:snapshot-diff:{base_hash}:{run_hash}"


def _cached_diff(base, run, base_rows):
    """snapshot_diff of two runs, cached by the two snapshots' hashes: a snapshot never changes once written, and
    reading two AffectNet-sized snapshots costs most of a second. `base_rows`: a one-item list filled on first use."""
    key = snapshot_diff_cache_key(base.snapshot_hash, run.snapshot_hash)
    if base.snapshot_hash and run.snapshot_hash:
        diff = cache.get(key)
        if diff is not None:
            return diff
    if not base_rows:
        base_rows.append(_snapshot_rows(base))
    diff = snapshot_diff(base_rows[0], _snapshot_rows(run))
    if diff is not None and base.snapshot_hash and run.snapshot_hash:
        cache.set(key, diff, timeout=24 * 3600)
    return diff


def runs_compare(*, run_ids):
    """Two or more runs side by side, the first as the baseline: metrics with deltas, per-class recall and
    precision with deltas, curves, confusion matrices with row totals, snapshot differences, and whether the runs
    were tested on the same split. Test accuracy carries its 95 % Wilson interval (`accuracy_ci`); each delta
    carries a `verdict` (how to draw it) from a paired test on the two runs' per-image test predictions: McNemar's
    exact test for accuracy and recall (delta_verdict), a randomisation test for macro F1 and precision
    (randomised_verdicts). Raises CompareError when an id names no run."""
    found = {r.pk: r for r in Run.objects.filter(pk__in=run_ids).select_related("dataset", "created_by",
                                                                                  "derived_from")}
    missing = [i for i in run_ids if i not in found]
    if missing:
        raise CompareError(f"no run with id {', '.join(map(str, missing))}")
    runs = [found[i] for i in run_ids]
    base = runs[0]
    base_metrics = base.test_metrics or {}
    base_rows = []  # read on the first diff that is not cached
    predictions = [_test_predictions(run) for run in runs]
    split_notes = runs_test_split_notes(runs)  # runs scored before leaked test images were excluded
    columns = []
    for index, run in enumerate(runs):
        m = run.test_metrics or {}
        col = {"run": run, "index": index, "metrics": m, "finished": bool(m)}
        for key in ("accuracy", "macro_f1"):
            col[key] = m.get(key)
            col[f"{key}_delta"] = (m[key] - base_metrics[key]) if index and key in m and key in base_metrics else None
        col["accuracy_ci"] = accuracy_interval(m)
        if col["accuracy_delta"] is not None:
            col["accuracy_verdict"] = delta_verdict(col["accuracy_delta"], base, run, predictions[0], predictions[index])
        col["snapshot_missing"] = not _snapshot_exists(run)
        col["diff"] = None if index == 0 else _cached_diff(base, run, base_rows)
        col["confusion"] = _confusion_rows(run, m)
        col["examples"] = run.plots.get("examples") if run.plots else None
        col["split_note"] = split_notes.get(run.pk)
        col["collapse"] = collapse_warning(run)
        # A significant loss names the training-set change that most likely caused it (curation/classifier/loss_cause).
        col["loss_cause"] = (loss_cause(base, run) if (col.get("accuracy_verdict") or {}).get("css") == "down"
                             else None)
        columns.append(col)
    per_class = []
    for code, name in enumerate(CLASSES):
        cells = []
        for col in columns:
            m = col["metrics"]
            cell = {}
            for key in ("recall", "precision"):
                value = m[key][code] if key in m and code < len(m[key]) else None
                base_value = base_metrics[key][code] if key in base_metrics and code < len(base_metrics[key]) else None
                cell[key] = value
                both = col["index"] and None not in (value, base_value)
                cell[f"{key}_delta"] = (value - base_value) if both else None
            if cell["recall_delta"] is not None:
                cell["recall_verdict"] = delta_verdict(cell["recall_delta"], base, col["run"], predictions[0],
                                                       predictions[col["index"]], true_label=code)
            cells.append(cell)
        per_class.append({"code": code, "name": name, "cells": cells})
    for col in columns[1:]:
        precision_deltas = [row["cells"][col["index"]]["precision_delta"] for row in per_class]
        if col["macro_f1_delta"] is None and all(d is None for d in precision_deltas):
            continue
        verdicts = randomised_verdicts(col["macro_f1_delta"], precision_deltas, base, col["run"], predictions[0],
                                       predictions[col["index"]])
        col["macro_f1_verdict"] = verdicts["macro_f1"]
        for row, verdict in zip(per_class, verdicts["precision"]):
            row["cells"][col["index"]]["precision_verdict"] = verdict
    for col in columns[1:]:
        _holm_per_class(per_class, col["index"])
    hashes = {r.test_split_hash for r in runs}
    return {
        "runs": runs,
        "columns": columns,
        "per_class": per_class,
        "same_test_split": len(hashes) == 1 and "" not in hashes,
        "test_split_hashes": sorted(h[:12] or "none" for h in hashes),
        "curves": _curves(runs),
        # Run groups (--seeds K) among the compared runs: mean, spread and worst run over all of each group's runs.
        "groups": [g for g in (group_summary(name) for name in dict.fromkeys(r.group for r in runs if r.group)) if g],
        # Near-duplicates of test images in train or val make every test figure here too high (find_duplicates).
        "leaks": dataset_leaks(base.dataset),
    }


def _test_predictions(run):
    """(image ids, labels, predicted classes) of the run's test predictions, or None when it kept none."""
    read = read_probabilities(run_predictions_path(run))
    if read is None:
        return None
    ids, labels, probs = read
    return ids, labels, probs.argmax(1)


def accuracy_interval(metrics):
    """{"low", "high", "n", "text"}: the 95 % Wilson interval of a run's test accuracy on its n test images (counted from
    the confusion matrix, else the class supports), or None without them."""
    confusion = metrics.get("confusion")
    if confusion:
        n = sum(map(sum, confusion))
        right = sum(row[i] for i, row in enumerate(confusion) if i < len(row))
    elif metrics.get("support") and metrics.get("accuracy") is not None:
        n = sum(metrics["support"])
        right = round(metrics["accuracy"] * n)
    else:
        return None
    if n <= 0:
        return None
    low, high = wilson_interval(right, n)
    return {"low": low, "high": high, "n": n, "text": f"{100 * low:.1f}–{100 * high:.1f} %"}


def delta_verdict(delta, base, run, base_predictions, predictions, *, true_label=None):
    """How to draw an accuracy delta (a class's recall delta with `true_label`) against the baseline: {"css",
    "title", "test"}. McNemar's exact test on the test images both runs predicted (of that true label only): a delta
    with p < 0.05 is green or red ("up", "down"), any other, or one whose run kept no per-image predictions, grey
    ("delta-noise") with a title saying why."""
    untested = _untested(base, run, base_predictions, predictions)
    if untested:
        return untested
    test = paired_test(base_predictions, predictions, true_label=true_label)
    what = "test images" if true_label is None else f"{CLASSES[true_label]} test images"
    title = (f"McNemar exact test on the n={test.n} {what} both runs predicted: b={test.b} only run {base.pk} "
             f"(baseline) right, c={test.c} only run {run.pk} right, p={_p(test.p)}")
    if test.label_mismatch:
        title += f"; {test.label_mismatch} shared images labelled differently left out"
    return _coloured(delta, test.p, test.n, title, what) | {"test": test}


def randomised_verdicts(macro_f1_delta, precision_deltas, base, run, base_predictions, predictions):
    """{"macro_f1": verdict, "precision": [verdict per class]} as delta_verdict draws them, from a paired
    randomisation test (training.significance.randomisation_test) of the two runs' test predictions. It costs most of
    a second on AffectNet's test split, so it is cached by the two prediction files' versions."""
    untested = _untested(base, run, base_predictions, predictions)
    if untested:
        return {"macro_f1": untested, "precision": [untested] * len(precision_deltas)}
    key = _randomisation_cache_key(base, run)
    test = cache.get(key) if key else None
    if test is None:
        test = randomisation_test(base_predictions, predictions, num_classes=len(CLASSES))
        if key:
            cache.set(key, test, timeout=24 * 3600)
    how = (f"paired randomisation test ({test.rounds} rounds, each swapping the two runs' predictions on a random "
           f"half of the images) on the n={test.n} test images both runs predicted")
    out = {"macro_f1": None if macro_f1_delta is None else _coloured(
        macro_f1_delta, test.macro_f1_p, test.n, f"{how}: p={_p(test.macro_f1_p)}", "test images")}
    out["precision"] = [None if delta is None else _coloured(
        delta, test.precision_p[code], test.n, f"{how}: p={_p(test.precision_p[code])}", "test images")
        for code, delta in enumerate(precision_deltas)]
    return out


def _randomisation_cache_key(base, run):
    stamps = []
    for r in (base, run):
        try:
            stat = run_predictions_path(r).stat()
        except OSError:
            return None
        stamps.append(f"{r.pk}-{stat.st_mtime_ns}-{stat.st_size}")
    return f"fer:compare-randomisation:{':'.join(stamps)}"


def _untested(base, run, base_predictions, predictions):
    """The grey verdict of a delta one of whose runs kept no per-image test predictions, else None."""
    without = [r.pk for r, p in ((base, base_predictions), (run, predictions)) if p is None]
    if not without:
        return None
    runs = " and ".join(f"run {pk}" for pk in without)
    return {"css": "delta-noise", "test": None,
            "title": f"not tested: {runs} kept no per-image test predictions, so there is no p-value"}


def _coloured(delta, p, n, title, what):
    if n == 0:
        return {"css": "delta-noise", "title": f"not tested: the runs share no {what}"}
    tested = {"p": p, "redraw": (delta, n, title, what)}
    if p >= ALPHA:
        return tested | {"css": "delta-noise", "title": f"{title} (≥ {ALPHA}): not distinguishable from noise"}
    css = "" if abs(delta) < 5e-4 else ("up" if delta > 0 else "down")
    return tested | {"css": css, "title": f"{title} (< {ALPHA})"}


def holm_adjusted(ps):
    """Holm's step-down adjustment of p-values tested together: each family-wise p, in the order given."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def _holm_per_class(per_class, index):
    """Redraw a run's per-class recall and precision verdicts with Holm-adjusted p-values: testing 16 deltas at
    p < 0.05 each turns about one red or green by chance alone."""
    verdicts = [(row["cells"][index], key) for row in per_class for key in ("recall_verdict", "precision_verdict")
                if (row["cells"][index].get(key) or {}).get("p") is not None]
    adjusted = holm_adjusted([cell[key]["p"] for cell, key in verdicts])
    for (cell, key), p in zip(verdicts, adjusted):
        delta, n, title, what = cell[key]["redraw"]
        cell[key] = _coloured(delta, p, n, f"{title}; Holm-adjusted over this run's {len(verdicts)} per-class "
                                           f"tests: p={_p(p)}", what)


def _p(p):
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _confusion_rows(run, metrics):
    matrix = metrics.get("confusion")
    if not matrix:
        return None
    return [{"code": code, "name": CLASSES[code], "total": sum(row),
             "cells": [{"code": p, "name": CLASSES[p], "n": n} for p, n in enumerate(row)]}
            for code, row in enumerate(matrix)]


def _curves(runs):
    """Per-epoch series for the charts: each run in its own colour, validation solid and training dashed."""
    charts = {"accuracy": [], "loss": []}
    for index, run in enumerate(runs):
        hist = run.history or []
        for chart, key in (("accuracy", "acc"), ("loss", "loss")):
            for split, dashed in (("val", False), ("train", True)):
                charts[chart].append({"name": f"run {run.pk}", "group": index, "dashed": dashed,
                                      "points": [(h["epoch"], h.get(f"{split}_{key}")) for h in hist]})
    return charts
