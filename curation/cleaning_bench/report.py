"""The benchmark's report: DIR/report.json (everything), DIR/report.md (tables and plots) and DIR/plots/*.png."""
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from curation.cleaning_bench.gan_signals import markdown_table  # noqa: E402
from training.labels import CLASSES  # noqa: E402

SECTIONS = ("plan", "dataset", "machine", "timings", "detection", "review", "review_audit", "audit", "review_decisions",
            "review_ceiling", "runs", "gan_quality", "gan_signals", "goals", "plots")


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _audit_lines(a, rv):
    """The random audit's estimates beside the truth (plan.audit_share > 0), as markdown lines."""
    if not a:
        return []

    def est(e):
        if e["estimate"] is None:
            return f"not enough audit decisions yet ({a['sample']} of {a['min_decisions']}); true {_f(e['true'])}"
        return (f"{_f(e['estimate'])} (95 % interval {_f(e['low'])}-{_f(e['high'])}) against a true {_f(e['true'])}: "
                f"{'covered' if e['covered'] else 'NOT covered'}")

    lines = ["", f"### The random audit against the truth (audit share {a['audit_share']:g})", "",
             f"{rv.get('audit_cards', 0)} of the {rv['decisions']} decisions were audit cards (the queue's own cards: "
             f"precision {_f(rv.get('queue_precision'))}); the audit's sample holds {a['sample']} decided images.",
             "", f"- share of wrong labels: {est(a['share_wrong'])}",
             f"- share still wrong after the review: {est(a['share_left'])}",
             "- fusion: " + (f"{a['fusion']['used']} (chosen from {a['fusion']['source']})" if a["fusion"]["used"]
                              else "the default order (too few decisions to choose)") + "; best signal "
             f"on the audit: {a['best_by_audit'] or 'none measured yet'}; under the truth: {a['best_under_truth']}"]
    measured = [s for s in a["signals"] if s["audit_auroc"] is not None]
    if measured:
        lines += ["", "| signal | AUROC on the audit (95 % interval, n) | AUROC under the truth |", "|---|---|---|"]
        lines += [f"| {s['signal']} | {_f(s['audit_auroc'])} ({_f(s['audit_low'])}-{_f(s['audit_high'])}, "
                  f"{s['audit_n']}) | {_f(s['auroc_under_truth'])} |" for s in measured]
    return lines


def _short(signal):
    return signal.split(" (")[0]


def plot_detection(detection, path):
    """AUROC and AP of each signal over all train images, and the precision of each signal's top-budget images."""
    signals = detection["signals"]
    names = list(signals)
    fig, (ax, ax_pc) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    x = np.arange(len(names))
    for k, (metric, label) in enumerate((("auroc", "AUROC"), ("ap", "average precision"))):
        values = [signals[n]["all"][metric] if signals[n].get("all") else 0 for n in names]
        bars = ax.bar(x + (k - 0.5) * 0.38, values, 0.38, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    base = detection["noisy"] / max(detection["train_images"], 1)
    ax.axhline(base, color="grey", ls=":", lw=1, label=f"AP of a random order ({base:.2f})")
    ax.set_xticks(x, [_short(n) for n in names])
    ax.set(ylim=(0, 1.08), title="Finding the wrong labels (train split)")
    ax.legend(fontsize=7, loc="lower right")
    per_class = np.array([[(signals[n].get(c) or {}).get("auroc", np.nan) for c in CLASSES] for n in names])
    im = ax_pc.imshow(per_class, cmap="viridis", vmin=0.5, vmax=1, aspect="auto")
    for i in range(per_class.shape[0]):
        for j in range(per_class.shape[1]):
            if not np.isnan(per_class[i, j]):
                ax_pc.text(j, i, f"{per_class[i, j]:.2f}", ha="center", va="center", fontsize=7,
                           color="black" if per_class[i, j] > 0.8 else "white")
    ax_pc.set_xticks(range(len(CLASSES)), CLASSES, rotation=30, ha="right")
    ax_pc.set_yticks(range(len(names)), [_short(n) for n in names])
    ax_pc.set_title("AUROC by labelled class")
    fig.colorbar(im, ax=ax_pc, fraction=0.03)
    return _save(fig, path)


def plot_review(detection, review, path):
    """Precision and recall of the flags, and what a review budget spent in each signal's order would find."""
    fig, (ax_f, ax_b) = plt.subplots(1, 2, figsize=(10, 3.4))
    flags = detection["flags"]
    x = np.arange(len(flags))
    for k, metric in enumerate(("precision", "recall")):
        bars = ax_f.bar(x + (k - 0.5) * 0.38, [flags[n][metric] or 0 for n in flags], 0.38, label=metric)
        ax_f.bar_label(bars, fmt="%.2f", fontsize=7)
    ax_f.set_xticks(x, [f"{n}\n({flags[n]['flagged']} flagged)" for n in flags], fontsize=7)
    ax_f.set(ylim=(0, 1.08), title="Flags against the wrong labels")
    ax_f.legend(fontsize=7)
    at = detection["precision_at_budget"]
    names = list(at)
    values = [at[n] or 0 for n in names] + [review["budget_precision"] or 0]
    bars = ax_b.bar(range(len(values)), values, color=["#888"] * len(names) + ["#2a7"])
    ax_b.bar_label(bars, fmt="%.2f", fontsize=7)
    ax_b.axhline(detection["noisy"] / max(detection["train_images"], 1), color="grey", ls=":", lw=1)
    ax_b.set_xticks(range(len(values)), [_short(n) for n in names] + ["review queue\n(as reviewed)"], fontsize=7)
    ax_b.set(ylim=(0, 1.08), title=f"Share of wrong labels in the top {detection['budget']} (the review budget)")
    return _save(fig, path)


def plot_runs(runs, path):
    """Test accuracy and macro F1 of every run, with the delta against the baseline, on the one test split."""
    rows = runs["runs"]
    names = list(rows)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 1, 3.8))
    x = np.arange(len(names))
    for k, metric in enumerate(("accuracy", "macro_f1")):
        values = [rows[n][metric] for n in names]
        spread = [rows[n].get(f"{metric}_std") or 0 for n in names]
        bars = ax.bar(x + (k - 0.5) * 0.38, values, 0.38, yerr=spread, capsize=2, label=metric.replace("_", " "))
        deltas = [rows[n][f"delta_{metric}"] for n in names]
        ax.bar_label(bars, [f"{v:.3f}" if n == "baseline" else f"{v:.3f}\n({d:+.3f})"
                            for n, v, d in zip(names, values, deltas)], fontsize=7)
    ax.set_xticks(x, [n.replace(" (", "\n(") for n in names], fontsize=8)
    top = max(max(r["accuracy"], r["macro_f1"]) for r in rows.values())
    ax.set(ylim=(0, min(1.0, top + 0.15)), ylabel="on the test split",
           title="Every run on the same clean test split (delta against the baseline)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_gan_quality(quality, path):
    """Per generator direction: share of outputs the baseline classifier calls the target class, beside that
    share among the sources."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    names = [q["direction"] for q in quality]
    x = np.arange(len(names))
    for k, (key, label) in enumerate((("target_rate_sources", "sources"), ("target_rate_outputs", "generated"))):
        bars = ax.bar(x + (k - 0.5) * 0.38, [q[key] or 0 for q in quality], 0.38, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.08), ylabel="called the target class",
           title="CycleGAN quality: the baseline classifier on sources and on their translations")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_report(report, out_dir):
    """Plots, report.json and report.md under out_dir; returns the paths. The JSON is written to a temporary name
    and renamed, so a report.json that exists is complete."""
    out = Path(out_dir)
    plots = {
        "detection": plot_detection(report["detection"], out / "plots" / "bench_detection.png"),
        "review": plot_review(report["detection"], report["review"], out / "plots" / "bench_review.png"),
        "runs": plot_runs(report["runs"], out / "plots" / "bench_runs.png"),
    }
    if report["gan_quality"]:
        plots["gan_quality"] = plot_gan_quality(report["gan_quality"], out / "plots" / "bench_gan_quality.png")
    report["plots"] = {k: str(v.relative_to(out)) for k, v in plots.items()}
    md = out / "report.md"
    md.write_text(markdown(report))
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=str))
    os.replace(tmp, out / "report.json")
    return out / "report.json", md


def _f(v, fmt=".3f"):
    return "" if v is None else format(v, fmt)


# The published share of the noisy-to-clean gap that noise-robust training closes with no review
# (../shared/ANCHORS.md): EAC on RAF-DB, confident learning + Co-Teaching on CIFAR-10.
ANCHORS = "EAC on RAF-DB 85 % at 20 % noise and 80 % at 30 %; confident learning + Co-Teaching on CIFAR-10 81 %"


def _robust_goal_lines(g):
    rr = g.get("reviewed_robust_recovers_80pct") or {}
    if rr.get("met") is None and rr.get("gap_recovered_accuracy") is None:
        return []
    beats = {True: "by more than", False: "NOT by more than", None: "(one seed: no spread to judge by)"}[
        rr["beats_robust_alone_by_more_than_spread"]]
    spread = "" if rr["seed_spread"] is None else f" the seed spread {rr['seed_spread']:.3f}"
    return [
        f"- {rr['robust_alone']} recovers {_f(rr['robust_alone_gap_recovered_accuracy'], '.0%')} of the gap; "
        f"published anchors: {ANCHORS}",
        f"- {rr['run']} (the best reviewed arm with a robust method or the SSL start) recovers {_f(rr['gap_recovered_accuracy'], '.0%')} (goal: "
        f"80 %): {'met' if rr['met'] else 'NOT met'}; it beats {rr['robust_alone']} by "
        f"{_f(rr['margin_over_robust_alone'], '+.3f')} {beats}{spread}",
        *([f"- {rr['ceiling']} (its bound: the same budget and reviewer error on a perfect queue, from the same "
           f"start) recovers {_f(rr['ceiling_gap_recovered_accuracy'], '.0%')}, so the queue reaches "
           f"{_f(rr['share_of_ceiling'], '.0%')} of what review can buy there"] if rr.get("ceiling") else []),
    ]


def _automatic_line(g):
    """The headline: the best run with no review and no truth, against half the gap."""
    a = g.get("best_automatic_recovers_half") or {}
    if a.get("run") is None:
        return []
    spread = "" if a.get("accuracy_std") is None else f" +- {a['accuracy_std']:.3f}"
    return [f"- **best automatic run** (no review, no truth): {a['run']}, accuracy {_f(a['accuracy'])}{spread}, "
            f"recovers {_f(a['gap_recovered_accuracy'], '.0%')} of the gap (goal: half): "
            f"{'met' if a['met'] else 'NOT met'}"]


def _rounds_lines(rounds):
    if len(rounds) < 2:
        return []
    return ["", "Review rounds (the out-of-fold models refitted on the reviewed labels and the queue rescored before "
                "each round after the first): " + "; ".join(
                    f"round {x['round']}: {x['noisy_reviewed']} of {x['decisions']} decisions on wrong labels "
                    f"(precision {_f(x['budget_precision'])})" for x in rounds) + "."]


def _data_sentence(r):
    """What the benchmark ran on: faces it made (noise model, rate) or a --faces folder (and its truth's cover)."""
    p, d, ds = r["plan"], r["detection"], r["dataset"]
    t = ds.get("truth") or {}
    if p.get("faces"):
        split_missing = ", ".join(f"{k} {v}" for k, v in (t.get("without_truth_by_split") or {}).items() if v)
        skipped = t.get("skipped_for_want_of_truth") or {}
        return (f"{ds['n']} faces from {p['faces']} at {p['size']} px (CycleGANs at {p['gan_size']} px). truth.csv "
                f"covers {t.get('with_truth')} of them; {t.get('without_truth')} have no truth "
                f"({split_missing or 'none'}) and are left out of every truth-based figure (the simulated reviewers "
                f"skipped {skipped.get('review', 0)} such cards, the review ceiling {skipped.get('review ceiling', 0)}; "
                f"the oracle leaves their labels as given). {d['noisy']} of the {d['train_images']} train images with "
                f"truth have a wrong label; {t.get('wrong_in_test', 0)} test images have one (accuracies are against "
                f"the test split's given labels).")
    model = ds.get("noise_model") or "uniform"
    text = (f"{ds['n']} synthetic faces at {p['size']} px (CycleGANs at {p['gan_size']} px; difficulty "
            f"{p['difficulty']}, seed {p['seed']}), {p['noise']:.0%} wrong labels in train + val ({d['noisy']} of "
            f"the {d['train_images']} train images), none in the {ds['test']} test images; noise model {model}")
    a = ds.get("annotators")
    if a:
        pair = a.get("two_annotator_agreement")
        text += (f" ({a['annotators']} simulated annotators a face, the label their plurality: one annotator is "
                 f"right on {a['one_annotator_accuracy']:.0%} of the faces"
                 + ("" if pair is None else f", two agree on {pair:.0%}") + ")")
    return text + "."


def markdown(r):
    p, d, rv, runs = r["plan"], r["detection"], r["review"], r["runs"]
    lines = [
        f"# Cleaning benchmark: {p['name']}",
        "",
        _data_sentence(r) + f" Classifier {p['arch']} ({p['epochs']} epochs, "
        f"{p['folds']} out-of-fold models{' from the self-supervised start' if p.get('queue_start') == 'ssl' else ''}; "
        f"{p.get('seeds', 1)} seed(s) a run, mean +- standard deviation), "
        f"CycleGANs ({p['gan_profile']} profile, "
        f"{p['gan_epochs']}+{p['gan_epochs_decay']} epochs) for {', '.join('-'.join(x) for x in p['pairs'])}. "
        f"Review budget {rv['decisions']} decisions ({p['budget']:.0%} of train), reviewer error "
        f"{p['reviewer_error']:.0%}. "
        f"Total {r['timings']['total']:.0f} s on {r['machine']['cpus']} CPUs "
        f"({r['machine'].get('cpu_model') or 'model unknown'}, torch kernels "
        f"{r['machine'].get('torch_cpu_capability')}; 1-minute load average "
        f"{r['machine']['load_average_before'][0]:.1f} before, "
        f"{r['machine']['load_average_after'][0]:.1f} after; torch threads: {r['machine']['torch_threads']}).",
        "",
        "## Goals",
        "",
    ]
    g = r["goals"]
    half, ceiling = g["reviewed_recovers_half_the_gap"], r["review_ceiling"]
    lines += [
        *_automatic_line(g),
        f"- fused suspicion AUROC {_f(g['fused_auroc_at_least_cleanlab']['fused'])} vs cleanlab alone "
        f"{_f(g['fused_auroc_at_least_cleanlab']['cleanlab'])}: "
        f"{'met' if g['fused_auroc_at_least_cleanlab']['met'] else 'NOT met'}",
        f"- the reviewed run recovers {_f(half['gap_recovered_accuracy'], '.0%')} of the baseline-to-oracle "
        f"accuracy gap (goal: half): {'met' if half['met'] else 'NOT met'}; the review ceiling (the same budget and "
        f"reviewer error on a perfect queue) recovers {_f(half['ceiling_gap_recovered_accuracy'], '.0%')}, so the "
        f"queue reaches {_f(half['share_of_ceiling'], '.0%')} of what review can buy",
        *_robust_goal_lines(g),
        f"- every run on the same test split (hash {str(runs['test_split_hash'])[:16]}): "
        f"{'yes' if g['same_test_split']['met'] else 'NO'}",
        "",
        "## Runs (test split, true labels)",
        "",
        "| run | trained on | accuracy | delta | macro F1 | delta | gap recovered (acc) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in runs["runs"].items():
        s = row["selection"]
        note = f"{s['train']} ({s.get('dropped_flagged_unconfirmed', 0) + s.get('dropped_excluded', 0)} dropped, " \
               f"{s.get('relabelled', 0)} relabelled, {s.get('generated', 0)} generated)"
        runs_of = ", ".join(str(x["run"]) for x in row.get("seeds", [])) or str(row["run"])
        if row.get("same_as"):
            note = f"the {row['same_as']}'s images (nothing to drop): its runs, not trained again"
        accuracy = _f(row["accuracy"]) + (f" +- {row['accuracy_std']:.3f}" if row.get("accuracy_std") is not None
                                           else "")
        lines.append(f"| {name} (run {runs_of}) | {note} | {accuracy} "
                     f"| {_f(row['delta_accuracy'], '+.3f')} | {_f(row['macro_f1'])} "
                     f"| {_f(row['delta_macro_f1'], '+.3f')} "
                     f"| {_f(row['gap_recovered_accuracy'], '.0%')} |")
    for name, why in r.get("runs_skipped", {}).items():
        lines.append(f"| {name} | not run: {why} | | | | | |")
    lines += ["", f"![runs]({r['plots']['runs']})", "", "## Detection (train split, against truth.csv)", "",
              "| signal | AUROC | AP | " + " | ".join(f"AUROC {c}" for c in CLASSES) + " |",
              "|---|---|---|" + "---|" * len(CLASSES)]
    for name, per in d["signals"].items():
        a = per.get("all") or {}
        lines.append(f"| {name} | {_f(a.get('auroc'))} | {_f(a.get('ap'))} | "
                     + " | ".join(_f((per.get(c) or {}).get("auroc")) for c in CLASSES) + " |")
    lines += ["", f"![detection]({r['plots']['detection']})", "", "| flags | flagged | precision | recall |",
              "|---|---|---|---|"]
    for name, f in d["flags"].items():
        lines.append(f"| {name} | {f['flagged']} | {_f(f['precision'])} | {_f(f['recall'])} |")
    if d.get("ssim_quantiles"):
        q = d["ssim_quantiles"]
        lines += ["", f"SSIM flag threshold {p['threshold']}; the raw SSIMs of the train images: min {_f(q[0])}, "
                      f"median {_f(q[50])}, 90th percentile {_f(q[90])}, 99th {_f(q[99])}, max {_f(q[100])}. "
                      f"The reduced runs drop the flagged images nobody confirmed (the reviewed runs: "
                      f"{p.get('doubtful', 'ssim')} flags)."]
    lines += ["", "## Review", "",
              f"{rv['decisions']} decisions by {p['reviewers']} simulated reviewers, queue order: "
              f"{rv['noisy_reviewed']} were wrong labels (budget precision {_f(rv['budget_precision'])}; "
              f"{_f(rv['share_of_noisy_reviewed'], '.0%')} of all wrong train labels reached). Labels fixed "
              f"{rv['labels_fixed']}, broken {rv['labels_broken']}, wrong labels confirmed "
              f"{rv['wrong_labels_confirmed']} "
              f"({rv['reviewer_errors']} simulated reviewer errors). Audit: {r['review_audit']['label_changes']} "
              f"LabelChange rows for {r['review_audit']['decisions']} decisions "
              f"({'all match' if r['review_audit']['ok'] else 'MISMATCH'}).",
              *_rounds_lines(r.get("review_rounds") or []),
              *_audit_lines(r.get("audit"), rv),
              "", f"The review ceiling, the same reviewers on a perfect queue (wrong labels first): "
              f"{ceiling['noisy_reviewed']} of its {ceiling['decisions']} decisions on wrong labels; fixed "
              f"{ceiling['labels_fixed']}, broken {ceiling['labels_broken']}. Taken back after its retrain: "
              f"{ceiling['undo']['restored']} of {ceiling['undo']['undone']} images restored.",
              "", "Precision of the top of each signal's order at the same budget: "
              + ", ".join(f"{_short(k)} {_f(v)}" for k, v in d["precision_at_budget"].items()) + ".",
              "", f"![review]({r['plots']['review']})", "", "## CycleGAN quality", "",
              "| generator | epoch | target class, sources | target class, generated | SSIM to source "
              "| quality check |",
              "|---|---|---|---|---|---|"]
    for q in r["gan_quality"]:
        check = {True: "passed", False: "failed: no say in the suspicion", None: "not checked"}[q.get("passes_check")]
        lines.append(f"| {q['direction']} | {q['epoch']} | {_f(q['target_rate_sources'])} | "
                     f"{_f(q['target_rate_outputs'])} | {_f(q['ssim_to_source'])} | {check} |")
    if "gan_quality" in r["plots"]:
        lines += ["", f"![gan quality]({r['plots']['gan_quality']})"]
    if (r.get("gan_signals") or {}).get("directions"):
        lines += ["", "## GAN signals beyond SSIM (AUROC for the wrong labels, higher = better)", "",
                  markdown_table(r["gan_signals"])]
    lines += ["", "## Timings (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in r["timings"].items()]
    return "\n".join(lines) + "\n"
