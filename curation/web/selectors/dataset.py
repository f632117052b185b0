"""Reads for the dataset page (and the health report, which shares its counts): the cleaning summary and the
given-against-reviewed confusion, recent runs and jobs, what feeds the queue and how it is ordered, and the agreement,
calibration and audit reports in the page's words."""
from collections import Counter

from django.db.models import Count, Q

from curation.models import GanModel, Image, Job, Run
from curation.scoring.fusion import AUDIT_MIN_PER_OUTCOME, LOGISTIC, MIN_PER_OUTCOME, REVIEWED_MIN, SPREAD_MIN
from curation.selectors import dataset_queue_run
from training.labels import CLASSES


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
