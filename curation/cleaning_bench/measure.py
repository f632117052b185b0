"""The benchmark's figures, read from the database and measured against the truth: detection, review, runs, GANs."""
import numpy as np

from curation.gans.snapshots import DIRECTIONS, direction_name, snapshot_quality
from curation.models import GanModel, Image, Job, Run
from curation.review.audit import dataset_audit_estimates
from curation.scoring.evaluate import SIGNALS, evaluate_signals
from curation.scoring.fusion import generator_works
from training.labels import CLASSES

# The runs after the baseline, in the order the report lists them (run_names); the oracle is the ceiling. The two
# reduced runs drop, without any review, the images the SSIM rule flagged (the published experiment) or those
# cleanlab found a label issue in (confident learning's pruning).
# The review ceiling is the reviewed run's own ceiling: the same budget and reviewer error on a perfect queue.
CEILING = "review ceiling (perfect queue)"
# With --ssl-epochs the same ceiling's labels trained from the self-supervised start: the bound of review on top of
# the start (reviewed, SSL start), which the ceiling from a random start is not.
SSL_CEILING = "review ceiling (perfect queue), SSL start"
ORACLE = "oracle (true labels)"
# With --ssl-epochs: the plain classifier started from the benchmark's one self-supervised pretraining instead of a
# random draw, on the noisy labels, on the reviewed ones and on the true ones. The start is the automatic half's
# method that needs no robust loss, so its three runs are arms like a robust method's (method "none").
SSL_ALONE = "SSL start (no review)"
SSL_REVIEWED = "reviewed, SSL start"
SSL_ORACLE = "oracle (true labels), SSL start"
PLAIN = {"alone": SSL_ALONE, "reviewed": SSL_REVIEWED, "oracle": SSL_ORACLE}
# The robust arms train with each of the plan's noise-robust methods (training/robust.py): on the noisy labels with
# no review at all (what the published methods do), on the reviewed labels (review as the multiplier on it), and on
# the true labels (its own ceiling); with --ssl-epochs each once more from the self-supervised start. Every gap
# share is against the plain oracle. Optional (--relabel-precision): reviewed + robust (the first method), with the
# unreviewed images of the lowest suspicion band where the reviewers chose the classifier's suggestion often enough
# trained on that suggestion.
ARM_REVIEW = {"alone": "robust {m} (no review)", "reviewed": "reviewed + robust {m}", "oracle": "oracle + robust {m}",
              "relabels": "reviewed + robust {m} + calibrated relabels"}
# The runs that read neither a reviewer's decision nor the truth: the product's automatic half.
AUTOMATIC = ("baseline", "reduced (SSIM flags, no review)", "reduced (cleanlab flags, no review)", SSL_ALONE)


def arm_name(review, method, ssl=False):
    """The report's name of a robust arm: review "alone", "reviewed", "oracle" or "relabels"; ssl: from the
    self-supervised start. Method "none" from the self-supervised start is plain training from it."""
    if method == "none" and ssl and review in PLAIN:
        return PLAIN[review]
    return ARM_REVIEW[review].format(m=method) + (", SSL start" if ssl else "")


def run_names(plan):
    """Every run the plan trains, in the report's order (the order the benchmark trains them, but the review
    ceiling and the oracles last)."""
    methods, starts = plan.robust_methods, [False, True] if plan.ssl_epochs else [False]
    names = ["baseline", "reduced (SSIM flags, no review)", "reduced (cleanlab flags, no review)"]
    names += [SSL_ALONE] if plan.ssl_epochs else []
    names += [arm_name("alone", m, ssl) for m in methods for ssl in starts]
    names += ["reviewed"] + ([SSL_REVIEWED] if plan.ssl_epochs else [])
    names += [arm_name("reviewed", m, ssl) for m in methods for ssl in starts]
    if plan.relabel_precision is not None:
        names.append(arm_name("relabels", (methods or ["none"])[0]))
    names += ["reviewed + augmented", CEILING] + ([SSL_CEILING] if plan.ssl_epochs else [])
    names += [ORACLE] + ([SSL_ORACLE] if plan.ssl_epochs else [])
    names += [arm_name("oracle", m, ssl) for m in methods for ssl in starts]
    return names


def robust_arms(plan):
    """{name: (review, method, ssl)} of the plan's robust arms, the self-supervised start's plain runs among them
    (method "none")."""
    starts = [False, True] if plan.ssl_epochs else [False]
    arms = {name: (r, "none", True) for r, name in PLAIN.items()} if plan.ssl_epochs else {}
    arms.update({arm_name(r, m, ssl): (r, m, ssl) for m in plan.robust_methods for ssl in starts
                 for r in ("alone", "reviewed", "oracle")})
    if plan.relabel_precision is not None:
        method = (plan.robust_methods or ["none"])[0]
        arms[arm_name("relabels", method)] = ("relabels", method, False)
    return arms


CLEANLAB = "cleanlab (1 - label quality)"
FUSED = "suspicion (fused)"


def _precision_recall(flags, noisy):
    flags, noisy = np.asarray(flags, bool), np.asarray(noisy, bool)
    hits = int((flags & noisy).sum())
    return {"flagged": int(flags.sum()), "true_positives": hits,
            "precision": hits / int(flags.sum()) if flags.any() else None,
            "recall": hits / int(noisy.sum()) if noisy.any() else None}


def detection(dataset, truth, *, budget):
    """AUROC and AP of each signal (overall and per class, from curation.scoring.evaluate), precision and recall of
    the flags, and the precision of each signal's top `budget` images (what a review budget spent in that order
    would find)."""
    by_path = {path: t.noisy for path, t in truth.items()}
    signals = evaluate_signals(dataset, by_path)
    images = [i for i in Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN).order_by("id")
              if i.path in truth]
    noisy = np.array([truth[i.path].noisy for i in images])
    flags = {
        "ssim (flagged at the threshold)": _precision_recall([i.flagged for i in images], noisy),
        "cleanlab (label issue)": _precision_recall([i.classifier_flagged for i in images], noisy),
        "either": _precision_recall([i.flagged or i.classifier_flagged for i in images], noisy),
    }
    at_budget = {}
    for name, get in SIGNALS.items():
        scored = [(get(i), n) for i, n in zip(images, noisy) if get(i) is not None]
        if scored:
            # Stable sort on the negated score: ties keep id order, as the queue does.
            order = np.argsort([-s for s, _ in scored], kind="stable")[:budget]
            at_budget[name] = float(np.mean([scored[k][1] for k in order])) if len(order) else None
    ssim = np.array([i.ambiguity for i in images if i.ambiguity is not None])
    # Where the flag threshold sits among the SSIMs: with weak generators no image may reach it.
    ssim_quantiles = {q: float(np.quantile(ssim, q / 100)) for q in (0, 50, 90, 99, 100)} if len(ssim) else {}
    return {"train_images": len(images), "noisy": int(noisy.sum()), "signals": signals, "flags": flags,
            "precision_at_budget": at_budget, "budget": budget, "ssim_quantiles": ssim_quantiles}


def review_summary(decisions, truth_noisy_total):
    """What the simulated review did: how many of its images were wrong labels (the budget's precision), how many
    labels it fixed and how many it broke."""
    n = len(decisions)
    noisy = sum(d["noisy"] for d in decisions)
    queue = [d for d in decisions if not d.get("audit")]  # the cards the suspicion chose (all, with no audit)
    fixed = sum(d["noisy"] and d["label_after"] == d["true_label"] for d in decisions)
    broken = sum(not d["noisy"] and d["label_after"] != d["true_label"] for d in decisions)
    missed = sum(d["noisy"] and d["label_after"] != d["true_label"] for d in decisions)
    return {"decisions": n, "noisy_reviewed": noisy, "budget_precision": noisy / n if n else None,
            "share_of_noisy_reviewed": noisy / truth_noisy_total if truth_noisy_total else None,
            "labels_fixed": fixed, "labels_broken": broken, "wrong_labels_confirmed": missed,
            "reviewer_errors": sum(d["reviewer_wrong"] for d in decisions),
            "audit_cards": n - len(queue),
            "queue_precision": sum(d["noisy"] for d in queue) / len(queue) if queue else None,
            "actions": {a: sum(d["action"] == a for d in decisions) for a in ("confirm", "relabel", "exclude")}}


def run_row(run):
    m = run.test_metrics or {}
    return {"run": run.pk, "reduced": run.reduced, "augmented": run.augmented, "selection": run.selection,
            "test_split_hash": run.test_split_hash, "snapshot_hash": run.snapshot_hash, "best_epoch": run.best_epoch,
            "accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"),
            "recall": dict(zip(CLASSES, m.get("recall", []))), "precision": dict(zip(CLASSES, m.get("precision", [])))}


def runs_table(run_ids, same_as=None, order=None):
    """{name: row}, in `order` (default: run_ids'), for run_ids {name: [run id of each seed]}: the first seed's run
    with, when there are several seeds, accuracy and macro F1 replaced by their mean over the seeds (each seed's
    figures and the standard deviation kept beside), each run's delta against the baseline and the share of the
    baseline-to-oracle gap it recovers (accuracy and macro F1); all on the dataset's one test split (the hashes say
    so). same_as {name: other name}: a run that would train on exactly the other's images with its seeds, reported
    with its figures."""
    rows, hashes, same_as = {}, set(), same_as or {}
    for name in order or list(run_ids):
        if name in same_as and same_as[name] in run_ids:
            run_ids = {**run_ids, name: run_ids[same_as[name]]}
        if name not in run_ids:
            continue
        seeds = [run_row(Run.objects.get(pk=pk)) for pk in run_ids[name]]
        hashes |= {r["test_split_hash"] for r in seeds}
        row = dict(seeds[0])
        for metric in ("accuracy", "macro_f1"):
            values = [r[metric] for r in seeds]
            row[metric] = float(np.mean(values))
            row[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        row["seeds"] = [{"run": r["run"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]} for r in seeds]
        if name in same_as:
            row["same_as"] = same_as[name]
        rows[name] = row
    base, oracle = rows.get("baseline"), rows.get(ORACLE)
    for row in rows.values():
        for metric in ("accuracy", "macro_f1"):
            row[f"delta_{metric}"] = row[metric] - base[metric] if base else None
            gap = (oracle[metric] - base[metric]) if base and oracle else None
            row[f"gap_recovered_{metric}"] = (row[metric] - base[metric]) / gap if gap else None
    return {"runs": rows, "same_test_split": len(hashes) == 1, "test_split_hash": next(iter(hashes)) if
            len(hashes) == 1 else None, "seeds": max((len(ids) for ids in run_ids.values()), default=0)}


def gan_quality(dataset):
    """Per generator direction, at the snapshot scoring uses (the last one: the benchmark picks none): how often
    the baseline classifier calls the outputs the target class, beside how often it calls the sources so (a
    generator that works moves the first above the second), the mean SSIM of output to source, and whether that
    passes the check the default suspicion applies."""
    out = []
    for gan in GanModel.objects.filter(dataset=dataset, status=GanModel.Status.SUCCEEDED).order_by("id"):
        epoch, quality = snapshot_quality(gan)
        if not quality:
            continue
        for direction in DIRECTIONS:
            q = quality[direction]
            out.append({"gan": gan.pk, "direction": direction_name(gan, direction), "epoch": epoch,
                        "target_rate_outputs": q.get("target_rate"), "target_rate_sources": q.get("source_target_rate"),
                        "ssim_to_source": q.get("ssim_to_source"), "passes_check": generator_works(q)})
    return out


def goals(detection_report, runs, arms=None):
    """The issue's goals, each with the figures it is judged on. arms: robust_arms(plan)."""
    overall = {name: per["all"]["auroc"] for name, per in detection_report["signals"].items() if per.get("all")}
    reviewed = runs["runs"].get("reviewed", {})
    recovered = reviewed.get("gap_recovered_accuracy")
    # What a perfect queue recovers with the same budget and reviewer error: the most the goal can reach here.
    ceiling = runs["runs"].get(CEILING, {}).get("gap_recovered_accuracy")
    return {
        "fused_auroc_at_least_cleanlab": {
            "fused": overall.get(FUSED), "cleanlab": overall.get(CLEANLAB),
            "met": None if FUSED not in overall or CLEANLAB not in overall else overall[FUSED] >= overall[CLEANLAB]},
        "reviewed_recovers_half_the_gap": {
            "gap_recovered_accuracy": recovered, "met": None if recovered is None else recovered >= 0.5,
            "ceiling_gap_recovered_accuracy": ceiling,
            "share_of_ceiling": recovered / ceiling if recovered is not None and ceiling else None},
        "reviewed_robust_recovers_80pct": _reviewed_robust_goal(runs["runs"], arms or {}),
        "best_automatic_recovers_half": _best_automatic_goal(runs["runs"], arms or {}),
        "same_test_split": {"met": runs["same_test_split"]},
    }


def _reviewed_robust_goal(rows, arms):
    """The best reviewed + robust arm (over the methods, the starts, with and without calibrated relabels, and the
    self-supervised start's plain reviewed run, whose "alone" is SSL_ALONE)
    against the 80 % share of the gap, and against the same method alone from the same start: it must beat it by
    more than the spread over seeds (the larger of the two runs' standard deviations; with one seed there is no
    spread, so that half is not judged)."""
    candidates = [name for name, (review, _, _) in arms.items() if review in ("reviewed", "relabels") and name in rows]
    if not candidates:
        return {"met": None}
    best = max(candidates, key=lambda name: rows[name]["accuracy"])
    _, method, ssl = arms[best]
    both, alone = rows[best], rows.get(arm_name("alone", method, ssl))
    recovered = both.get("gap_recovered_accuracy")
    # What the same review on a perfect queue buys from the same start: the most this arm's review can reach.
    ceiling_name = SSL_CEILING if ssl else CEILING
    ceiling = rows.get(ceiling_name, {}).get("gap_recovered_accuracy")
    margin = both["accuracy"] - alone["accuracy"] if alone else None
    spreads = [r.get("accuracy_std") for r in (both, alone) if r]
    spread = max(spreads) if spreads and all(s is not None for s in spreads) else None
    beats = None if margin is None or spread is None else margin > spread
    return {"run": best, "method": method, "ssl_start": ssl, "gap_recovered_accuracy": recovered,
            "robust_alone": arm_name("alone", method, ssl) if alone else None,
            "robust_alone_gap_recovered_accuracy": alone.get("gap_recovered_accuracy") if alone else None,
            "ceiling": ceiling_name if ceiling_name in rows else None, "ceiling_gap_recovered_accuracy": ceiling,
            "share_of_ceiling": recovered / ceiling if recovered is not None and ceiling else None,
            "margin_over_robust_alone": margin, "seed_spread": spread, "beats_robust_alone_by_more_than_spread": beats,
            "met": None if recovered is None else recovered >= 0.8 and beats is not False}


def _best_automatic_goal(rows, arms):
    """The best run that read no reviewer's decision and no truth (the baseline, the reduced runs, the SSL start,
    each robust method alone) against half the gap: what the product does for a user who reviews nothing."""
    candidates = list(dict.fromkeys([n for n in AUTOMATIC if n in rows] + [
        n for n, (review, _, _) in arms.items() if review == "alone" and n in rows]))
    if not candidates:
        return {"met": None}
    best = max(candidates, key=lambda name: rows[name]["accuracy"])
    recovered = rows[best].get("gap_recovered_accuracy")
    return {"run": best, "accuracy": rows[best]["accuracy"], "accuracy_std": rows[best].get("accuracy_std"),
            "gap_recovered_accuracy": recovered, "met": None if recovered is None else recovered >= 0.5,
            "candidates": {n: rows[n].get("gap_recovered_accuracy") for n in candidates}}


# The audit's signal names (curation.review.audit.SIGNALS) and the same signals' names under the truth
# (curation.scoring.evaluate.SIGNALS).
AUDIT_TO_TRUTH = {
    "suspicion (the queue's order)": FUSED,
    "cleanlab margin (1 - label quality)": CLEANLAB,
    "datalab neighbours (1 - label score)": "datalab label (1 - neighbours' label score)",
    "datalab outlier (1 - outlier score)": "datalab outlier (1 - outlier score)",
    "gan (normalised SSIM)": "gan (normalised, all directions)",
    "ssim (raw, the published rule)": "ssim (raw, published rule)",
}


def audit_against_truth(dataset, truth):
    """The random audit's estimates after the review (curation.review.audit.dataset_audit_estimates: the share of
    wrong labels, the share left wrong, each signal's AUROC on the audit's decisions) beside what they estimate,
    measured against the truth now; and which order the fusion last chose, from what, beside the best signal under
    the truth. Images without truth are left out of the true figures."""
    estimates = dataset_audit_estimates(dataset)
    rows = [(p, s, label) for p, s, label in Image.objects.filter(dataset=dataset).values_list("path", "status", "label")
            if p in truth]
    true_rate = float(np.mean([truth[p].noisy for p, _, _ in rows])) if rows else None
    # Still wrong: an image not excluded whose label is not its true class (an unreviewed one keeps its given label).
    true_left = (float(np.mean([s != Image.Status.EXCLUDED and label != truth[p].label for p, s, label in rows]))
                 if rows else None)
    under_truth = {name: (m.get("all") or {}).get("auroc")
                   for name, m in evaluate_signals(dataset, {p: t.noisy for p, t in truth.items()}).items()}

    def against(estimate, true):
        return {"estimate": estimate.get("estimate"), "low": estimate.get("low"), "high": estimate.get("high"),
                "true": true, "covered": bool(estimate["enough"]) and true is not None
                and estimate["low"] <= true <= estimate["high"]}

    signals = [{"signal": e["signal"], "audit_n": e["n"], "audit_auroc": e.get("auroc"), "audit_low": e.get("low"),
                "audit_high": e.get("high"), "auroc_under_truth": under_truth.get(AUDIT_TO_TRUTH.get(e["signal"]))}
               for e in estimates["signals"]]
    measured = [s for s in signals if s["audit_auroc"] is not None]
    with_truth = [s for s in signals if s["auroc_under_truth"] is not None]
    last_scoring = (Job.objects.filter(kind="score_ambiguity", status=Job.Status.SUCCEEDED,
                                       params__dataset=dataset.name).order_by("-id")
                    .values_list("result", flat=True).first() or {})
    fusion = last_scoring.get("fusion") or {}
    return {
        "audit_share": estimates["audit_share"], "audit_cards": estimates["audit_cards"],
        "sample": estimates["overall"]["n"], "enough": estimates["overall"]["enough"],
        "min_decisions": estimates["min_decisions"],
        "share_wrong": against(estimates["overall"], true_rate),
        "share_left": against(estimates["remaining"], true_left),
        "signals": signals,
        "best_by_audit": max(measured, key=lambda s: s["audit_auroc"])["signal"] if measured else None,
        "best_under_truth": max(with_truth, key=lambda s: s["auroc_under_truth"])["signal"] if with_truth else None,
        "fusion": {"source": fusion.get("source", "queue decisions" if fusion.get("auroc") else "default"),
                   "used": fusion.get("used")},
    }
