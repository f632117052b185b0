"""Reads for the browser pages: the jobs list with child-job counts, runs side by side, CycleGAN snapshots and a
dataset's cleaning summary. Pages only read through here."""
import csv
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.utils import timezone

from curation.classifier.collapse import collapse_warning
from curation.classifier.loss_cause import loss_cause
from curation.classifier.predictions import read_probabilities, run_predictions_path
from curation.classifier.seeds import group_summary
from curation.duplicates.leaks import dataset_leaks, runs_test_split_notes
from curation.gans.snapshots import generator_snapshot, pair_generators
from curation.jobs.selectors import job_get
from curation.models import GanModel, Image, Job, Run
from curation.scoring.fusion import AUDIT_MIN_PER_OUTCOME, LOGISTIC, MIN_PER_OUTCOME, REVIEWED_MIN, SPREAD_MIN
from curation.selectors import dataset_queue_run
from training.labels import CLASSES
from training.significance import ALPHA, paired_test, randomisation_test, wilson_interval

JOBS_PER_PAGE = 25


def jobs_page(*, page=1, per_page=JOBS_PER_PAGE):
    """A page of top-level jobs (no parent), newest first, each with `child_counts` ({"total", "done", "failed"})
    when it has children. Three queries whatever the page size (count, page, children)."""
    qs = Job.objects.filter(parent__isnull=True).select_related("created_by").order_by("-id")
    page_obj = Paginator(qs, per_page).get_page(page)
    jobs = list(page_obj.object_list)
    counts = job_children_counts(job_ids=[j.pk for j in jobs])
    for job in jobs:
        job.child_counts = counts.get(job.pk)
    page_obj.object_list = jobs
    return page_obj


def job_children_counts(*, job_ids):
    """{parent job id: {"total", "done", "failed"}} of the children of `job_ids` (Job.parent)."""
    if not job_ids:
        return {}
    rows = Job.objects.filter(parent_id__in=list(job_ids)).values_list("parent_id", "status")
    out = {}
    for parent, status in rows:
        c = out.setdefault(parent, {"total": 0, "done": 0, "failed": 0})
        c["total"] += 1
        c["done"] += status == Job.Status.SUCCEEDED
        c["failed"] += status in (Job.Status.FAILED, Job.Status.CANCELLED)
    return out


def job_duration(job, *, now=None):
    """Seconds the job has run (so far, if it still runs), or None before it starts."""
    if job.started_at is None:
        return None
    end = job.finished_at or (now or timezone.now())
    return max((end - job.started_at).total_seconds(), 0.0)


def job_for_row(*, job_id):
    """The job with `child_counts` as jobs_page gives it. Raises JobNotFound."""
    job = job_get(job_id=job_id)
    job.child_counts = job_children_counts(job_ids=[job.pk]).get(job.pk)
    return job


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


GAN_LOSS_KEYS = ("G_A", "G_B", "D_A", "D_B", "cycle", "idt")


def dataset_gans(*, dataset):
    """The dataset's CycleGANs, newest first, each with its loss series, snapshot epochs (those whose generators
    were saved), quality rows, the epoch scoring uses, and `used_by_pair`: the CycleGAN its pair uses (scoring, the
    review card and generation: curation.gans.snapshots.pair_generators), None while none of the pair finished.
    `pairs`: one row per pair, what it uses and why."""
    used = {frozenset((g.source_label, g.target_label)): g for g in pair_generators(dataset)}
    out = []
    for gan in GanModel.objects.filter(dataset=dataset).select_related("job", "classifier_run").order_by("-id"):
        in_use = used.get(frozenset((gan.source_label, gan.target_label)))
        losses = gan.losses or []
        snapshots = [e["epoch"] for e in losses if e.get("generators")]
        scoring_epoch = generator_snapshot(gan)[1]  # the chosen snapshot if it was saved, else the last epoch
        quality = []
        for e in losses:
            q = e.get("quality")
            if q:
                quality.append({"epoch": e["epoch"], "AB": q.get("AB") or {}, "BA": q.get("BA") or {},
                                "chosen": e["epoch"] == scoring_epoch})
        out.append({
            "gan": gan,
            "pair": f"{CLASSES[gan.source_label]} ↔ {CLASSES[gan.target_label]}",
            "source": CLASSES[gan.source_label], "target": CLASSES[gan.target_label],
            "series": [{"name": k, "points": [(e["epoch"], e.get(k)) for e in losses]} for k in GAN_LOSS_KEYS
                       if any(k in e for e in losses)],
            "samples": {e["epoch"]: e["samples"] for e in losses if e.get("samples")},
            "snapshots": snapshots,
            "quality": quality,
            "scoring_epoch": scoring_epoch,
            "used": in_use is not None and in_use.pk == gan.pk,
            "used_by_pair": in_use and {"pk": in_use.pk, "epoch": generator_snapshot(in_use)[1],
                                        "chosen": in_use.chosen_at is not None},
        })
    return out


def pair_choices(gans):
    """One row per label pair of dataset_gans' output, in its order: {"pair", "gan", "epoch", "chosen", "runs"}:
    the CycleGAN and epoch the pair uses, whether a curator chose it, and how many CycleGANs the pair has."""
    rows = {}
    for g in gans:
        row = rows.setdefault(g["pair"], {"pair": g["pair"], "gan": None, "runs": 0})
        row["runs"] += 1
        if g["used"]:
            row.update(gan=g["gan"].pk, epoch=g["scoring_epoch"], chosen=g["gan"].chosen_at is not None,
                       epoch_chosen=bool(g["gan"].chosen_epoch))
    return list(rows.values())


def dataset_overview(*, dataset):
    """Counts per class before cleaning (original labels, every image) and after (current labels, excluded
    images left out), flag rates per class on the train split (scores cover train), review progress, and
    `confusion`: the decided images by given label against what the review made of them (review_confusion).
    Two grouped queries."""
    per_class = {code: {"code": code, "name": name, "before": 0, "after": 0, "train": 0, "flagged": 0,
                        "classifier_flagged": 0} for code, name in enumerate(CLASSES)}
    rows = (Image.objects.filter(dataset=dataset).values_list("original_label", "label", "status", "split",
                                                             "flagged", "classifier_flagged")
            .annotate(n=Count("id")).order_by())
    status = Counter()
    split = Counter()
    decided = Counter()
    reviewed_flagged = flagged_total = 0
    for original, label, st, sp, flagged, cl_flagged, n in rows:
        if st != Image.Status.UNREVIEWED:
            decided[original, label, st] += n
        per_class[original]["before"] += n
        if st != Image.Status.EXCLUDED:
            per_class[label]["after"] += n
        status[st] += n
        split[sp] += n
        if sp == Image.Split.TRAIN:
            per_class[label]["train"] += n
            per_class[label]["flagged"] += n if flagged else 0
            per_class[label]["classifier_flagged"] += n if cl_flagged else 0
        if flagged:
            flagged_total += n
            reviewed_flagged += n if st != Image.Status.UNREVIEWED else 0
    for c in per_class.values():
        c["change"] = c["after"] - c["before"]
        c["flag_rate"] = c["flagged"] / c["train"] if c["train"] else None
        c["classifier_flag_rate"] = c["classifier_flagged"] / c["train"] if c["train"] else None
    total = sum(status.values())
    reviewed = total - status[Image.Status.UNREVIEWED]
    reviewers = (Image.objects.filter(dataset=dataset, reviewed_by__isnull=False)
                 .values("reviewed_by__username").annotate(n=Count("id")).order_by("-n"))
    return {
        "per_class": list(per_class.values()),
        "status": {s: status[s] for s in Image.Status.values},
        "split": {s: split[s] for s in Image.Split.values},
        "total": total,
        "reviewed": reviewed,
        "reviewed_share": reviewed / total if total else None,
        "flagged_total": flagged_total,
        "flagged_reviewed": reviewed_flagged,
        "reviewers": [(r["reviewed_by__username"], r["n"]) for r in reviewers],
        "n_runs": Run.objects.filter(dataset=dataset).count(),
        "n_gans": GanModel.objects.filter(dataset=dataset).count(),
        "confusion": review_confusion(decided),
    }


def review_confusion(decided):
    """The decided images as a matrix, given label (rows) against the review's verdict (columns: the eight classes,
    then "excluded"), from `decided`: {(original label, label, status): count} of the images not unreviewed.

    Each cell is exactly one filter of the review grid, so a link can show the images it counts: on the diagonal
    the images confirmed with their given label, off it the images relabelled from the row's class to the column's,
    and the excluded ones. Images a second pass left elsewhere (confirmed after an earlier relabel, or relabelled
    back to their given label) are counted in `other` with their own filter. Returns {"rows": [{"code", "name",
    "cells": [{"column", "code" (None for excluded), "n", "filters"}], "total"}], "columns", "decided", "other":
    [{"given", "label", "status", "n", "filters"}], "pairs": off-diagonal cells, largest first}."""
    columns = [*CLASSES, "excluded"]
    rows, other, pairs = [], [], []
    for g, given in enumerate(CLASSES):
        cells = []
        for c, column in enumerate(columns):
            if column == "excluded":
                n = sum(k for (o, _, st), k in decided.items() if o == g and st == Image.Status.EXCLUDED)
                filters = {"original_label": g, "status": Image.Status.EXCLUDED.value}
                code = None
            else:
                status = Image.Status.CONFIRMED if c == g else Image.Status.RELABELLED
                n = decided.get((g, c, status), 0)
                filters = {"original_label": g, "label": c, "status": status.value}
                code = c
            cell = {"column": column, "code": code, "n": n, "filters": filters}
            cells.append(cell)
            if code != g and n:
                pairs.append({"given": given, "reviewed": column, **cell})
        rows.append({"code": g, "name": given, "cells": cells, "total": sum(cell["n"] for cell in cells)})
    for (o, label, st), n in sorted(decided.items()):
        if st == Image.Status.CONFIRMED and label != o or st == Image.Status.RELABELLED and label == o:
            other.append({"given": CLASSES[o], "label": CLASSES[label], "status": st, "n": n,
                          "filters": {"original_label": o, "label": label, "status": str(st)}})
    pairs.sort(key=lambda p: -p["n"])
    return {"rows": rows, "columns": columns, "decided": sum(decided.values()), "other": other, "pairs": pairs}


# What the dataset page calls each job kind (the jobs page's start forms say the same).
JOB_KIND_WORDS = {"import_dataset": "Import", "train_classifier": "Classifier training",
                  "train_cyclegan": "CycleGAN training", "generate_images": "Image generation",
                  "score_ambiguity": "Scoring", "score_chunk": "Scoring part",
                  "import_predictions": "Predictions import"}
RECENT_RUNS = 5
RECENT_JOBS = 8


def dataset_recent_runs(*, dataset, limit=RECENT_RUNS):
    """The dataset's latest runs, newest first, each with `accuracy` (test accuracy or None). One query."""
    runs = list(Run.objects.filter(dataset=dataset).order_by("-id")[:limit])
    for run in runs:
        run.accuracy = (run.test_metrics or {}).get("accuracy")
    return runs


def dataset_queue_model(*, dataset):
    """What feeds the dataset's queue, for its page: {"run": the run (or None: nothing yet), "imported": whether it
    is an imported model (a curator picked it), "in_sample": whether its predictions were declared in-sample,
    "choices": the dataset's finished imported runs, newest first}. Two queries."""
    run = dataset_queue_run(dataset_id=dataset.pk)
    imported = run is not None and run.source == Run.Source.IMPORTED
    return {"run": run, "imported": imported,
            "in_sample": imported and not run.config.get("out_of_sample"),
            "choices": list(Run.objects.filter(dataset=dataset, source=Run.Source.IMPORTED,
                                               status=Run.Status.SUCCEEDED).exclude(oof_file="").order_by("-id"))}


def dataset_recent_jobs(*, dataset, limit=RECENT_JOBS):
    """The latest jobs about the dataset (its import and every job run on it; chunk jobs stay with their parent),
    newest first, each with `kind_words`. One query."""
    jobs = list(Job.objects.filter(parent__isnull=True)
                .filter(Q(params__dataset=dataset.name) | Q(kind="import_dataset", params__name=dataset.name))
                .select_related("created_by").order_by("-id")[:limit])
    for job in jobs:
        job.kind_words = JOB_KIND_WORDS.get(job.kind, job.kind)
    return jobs


def queue_order(*, dataset):
    """How the latest finished scoring of `dataset` ordered its review queue, in words for the dataset page (the
    `fusion` part of the score_ambiguity job's result: curation/scoring/fusion.py), or None before any."""
    job = (Job.objects.filter(kind="score_ambiguity", status=Job.Status.SUCCEEDED, result__dataset=dataset.name)
           .order_by("-id").only("id", "result", "finished_at").first())
    fusion = (job.result or {}).get("fusion") if job else None
    if not fusion:
        return None
    default = "the default suspicion (the classifier's label quality first, the GAN's score breaking ties)"
    used, reviewed, auroc = fusion.get("used"), fusion.get("reviewed", 0), fusion.get("auroc") or {}
    at = {"job": job.pk, "finished_at": job.finished_at}
    if fusion.get("source") == "audit":
        interval = fusion.get("interval") or {}
        key = LOGISTIC if used == "logistic" else used
        name = ("a logistic model over the signals" if used == "logistic" else
                "the default suspicion" if used == "default" else f"the {used} signal alone")
        low, high = interval.get(key, [0, 0])
        others = ", ".join(f"{k} {v:.2f}" for k, v in sorted(auroc.items(), key=lambda kv: -kv[1]) if k != key)
        return {**at, "text": f"chosen on the random audit's {reviewed} decisions ({fusion.get('changed', 0)} wrong "
                              f"labels), which measure every signal on the whole queue: {name}, which ranked them "
                              f"best (AUROC {auroc.get(key, 0):.2f}, 95 % interval {low:.2f}-{high:.2f}; {others})"}
    # Until the audit can choose: what it holds, where an audit has begun.
    audit = ""
    if fusion.get("audit_decisions"):
        wrong = fusion.get("audit_wrong", 0)
        audit = (f"; the random audit chooses instead once its sample holds {AUDIT_MIN_PER_OUTCOME} wrong labels and "
                 f"{AUDIT_MIN_PER_OUTCOME} confirmed ones ({wrong} and {fusion['audit_decisions'] - wrong} now)")
    if used == "default" and not auroc:
        why = (f"it learns from reviews once {REVIEWED_MIN} images are reviewed, {MIN_PER_OUTCOME} of them changed "
               f"and {MIN_PER_OUTCOME} confirmed ({reviewed} reviewed, {fusion.get('changed', 0)} changed when it "
               "scored)")
    elif used == "default" and fusion.get("below_median", SPREAD_MIN) < SPREAD_MIN:
        why = (f"{fusion['below_median']} of the {reviewed} reviewed images lie below the median suspicion; it "
               f"learns from reviews once {SPREAD_MIN} do, since decisions from the top of the queue alone cannot "
               "say how to rank the rest (review some with the queue's suspicion range)")
    elif used == "default":
        why = f"it ranked the {reviewed} reviewed images best (AUROC {auroc.get('default', 0):.2f})"
    else:
        name = "a logistic model over the signals" if used == "logistic" else f"the {used} signal alone"
        score = auroc.get(LOGISTIC if used == "logistic" else used, 0)
        return {**at, "text": f"learnt from the {reviewed} reviews made by then: {name}, which ranked them best "
                              f"(AUROC {score:.2f}){audit}"}
    return {**at, "text": f"{default}: {why}{audit}"}


# Landis and Koch's words for a kappa, the usual reading of one.
KAPPA_WORDS = ((-1e-9, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"),
               (1.01, "almost perfect"))


def kappa_words(kappa):
    if kappa is None:
        return "not measurable yet"
    return next(words for limit, words in KAPPA_WORDS if kappa <= limit)


def agreement_summary(agreement):
    """The agreement report (curation.review.agreement) in the dataset page's words: the figures, kappa's reading,
    and per class only the categories someone voted for. None when there is no report."""
    if agreement is None:
        return None
    classes = [{"name": name, **c, "words": kappa_words(c["kappa"])}
               for name, c in agreement["per_class"].items() if c["votes"]]
    return {**agreement, "kappa_words": kappa_words(agreement["kappa"]), "classes": classes}


def calibration_summary(report):
    """The calibration report (curation.scoring.calibration) for the dataset page: per scope (all classes, then
    each class with reviewed images) the reviewed and wrong counts and, per signal, the suggested threshold with its
    precision and recall, or why there is none. What a class needs before a threshold is suggested is said once
    (`needs`), not per row: a row that has too few reviews says only "too few reviews". None without a report."""
    if report is None:
        return None
    rows = []
    for scope, entry in report["suggested"].items():
        row = {"scope": "all classes" if scope == "all" else scope, "reviewed": entry["reviewed"],
               "wrong": entry["wrong"], "signals": []}
        for signal in ("ambiguity", "suspicion"):
            threshold, reason = entry[f"{signal}_threshold"], entry.get(f"{signal}_reason") or ""
            if threshold is not None:
                row["signals"].append({"threshold": threshold, "precision": entry[f"{signal}_precision"],
                                       "recall": entry[f"{signal}_recall"], "flagged": entry[f"{signal}_flagged"]})
            elif reason.startswith("needs "):
                row["signals"].append({"threshold": None, "reason": "too few reviews"})
            else:
                row["signals"].append({"threshold": None, "reason": reason})
        rows.append(row)
    return {"precision": report["precision"], "reviewed": report["reviewed"], "wrong": report["wrong"],
            "needs": report["needs"], "rows": rows, "has_command": bool(report.get("command"))}


def _scalar(value):
    return value is None or isinstance(value, (str, int, float, bool))


def report_tables(report, title=""):
    """Tables ({"title", "headers", "rows"}) for any plain JSON-like report: a list of dicts becomes one table; a
    dict's scalar entries become one key/value table and each nested list of dicts or dict of dicts a table of
    its own."""
    if report is None:
        return []
    if isinstance(report, (list, tuple)):
        if report and all(isinstance(r, dict) for r in report):
            headers = list(dict.fromkeys(k for r in report for k in r))
            return [{"title": title, "headers": headers, "rows": [[r.get(h) for h in headers] for r in report]}]
        return [{"title": title, "headers": ["value"], "rows": [[v] for v in report]}]
    if not isinstance(report, dict):
        return [{"title": title, "headers": ["value"], "rows": [[report]]}]
    tables = []
    scalars = [[k, v] for k, v in report.items() if _scalar(v)]
    if scalars:
        tables.append({"title": title, "headers": ["", ""], "rows": scalars})
    for key, value in report.items():
        if _scalar(value):
            continue
        name = f"{title} · {key}" if title else str(key)
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            headers = list(dict.fromkeys(k for v in value.values() for k in v))
            tables.append({"title": name, "headers": ["", *headers],
                           "rows": [[k, *[v.get(h) for h in headers]] for k, v in value.items()]})
        elif isinstance(value, dict) and all(_scalar(v) for v in value.values()):
            tables.append({"title": name, "headers": ["", ""], "rows": [[k, v] for k, v in value.items()]})
        else:
            tables.extend(report_tables(value, name))
    return tables


def _share_words(entry, minimum):
    """One estimate in the dataset page's words: the share with its interval and what it rests on, or why none."""
    n = entry["n"]
    if not entry["enough"]:
        return f"not enough audit decisions yet ({n} of the {minimum} needed)"
    def pct(x):
        return f"{100 * x:.1f} %"

    return (f"{pct(entry['estimate'])} (95 % interval {pct(entry['low'])} to {pct(entry['high'])}), from {n} audit "
            f"decision{'s' if n != 1 else ''}")


def audit_summary(estimates):
    """The audit's estimates (curation.review.audit.dataset_audit_estimates) for the dataset page: the figures as
    sentences, each with the number of audit decisions it rests on, or "not enough audit decisions yet"."""
    minimum = estimates["min_decisions"]
    remaining = estimates["remaining"]
    remaining_words = _share_words(remaining, minimum)
    if remaining["enough"]:
        remaining_words += f", after the {remaining['corrected']} labels the review has changed or excluded so far"
    signals = []
    for s in estimates["signals"]:
        if s.get("auroc") is not None:
            words = (f"AUROC {s['auroc']:.2f} (95 % interval {s['low']:.2f} to {s['high']:.2f}), from {s['n']} audit "
                     f"decisions")
        elif s.get("why"):
            words = f"not measurable yet: {s['why']} ({s['n']} audit decisions)"
        else:
            words = f"not enough audit decisions yet ({s['n']} of the {minimum} needed)"
        signals.append({"signal": s["signal"], "words": words})
    return {
        "share": estimates["audit_share"], "decisions": estimates["decisions"], "cards": estimates["audit_cards"],
        "overall": _share_words(estimates["overall"], minimum), "pending": estimates["overall"].get("pending", 0),
        "per_label": [{"label": e["label"], "words": _share_words(e, minimum)} for e in estimates["per_label"]],
        "confusion": estimates["confusion"], "signals": signals, "remaining": remaining_words,
        "assumptions": estimates["assumptions"], "crowdlab_weighted": estimates["crowdlab_weighted"],
    }
