"""`bench_cleaning --noise-model both`: the benchmark under each noise model on the same faces, side by side.

Each model's run is a whole benchmark of its own (DIR/<model>/report.json and report.md); this writes
DIR/comparison.json and DIR/comparison.md: each signal's AUROC, AP and the precision of its top budget (the
review budget, 10 % of the train split by default), the queue's budget precision as reviewed, every arm's
accuracy, and the GAN signals per generator direction, one column a model.
"""
import json
import os
from pathlib import Path


def _f(v, fmt=".3f"):
    return "-" if v is None else format(v, fmt)


def comparison(reports):
    """{model: report} -> the figures side by side (a dict, also what comparison.json holds)."""
    out = {"models": list(reports), "detection": {}, "queue": {}, "runs": {}, "gan_signals": {}, "data": {}}
    for model, r in reports.items():
        d = r["detection"]
        out["data"][model] = {"train_images": d["train_images"], "noisy": d["noisy"],
                              "base_rate": d["noisy"] / d["train_images"] if d["train_images"] else None,
                              "budget": d["budget"], "annotators": r["dataset"].get("annotators"),
                              "report": r.get("report_dir")}
        for signal, per in d["signals"].items():
            a = per.get("all") or {}
            out["detection"].setdefault(signal, {})[model] = {
                "auroc": a.get("auroc"), "ap": a.get("ap"), "precision_at_budget": d["precision_at_budget"].get(signal)}
        rv, ceiling = r["review"], r["review_ceiling"]
        out["queue"][model] = {"budget_precision": rv["budget_precision"], "decisions": rv["decisions"],
                               "labels_fixed": rv["labels_fixed"], "labels_broken": rv["labels_broken"],
                               "ceiling_noisy_reviewed": ceiling["noisy_reviewed"]}
        for name, row in r["runs"]["runs"].items():
            out["runs"].setdefault(name, {})[model] = {
                "accuracy": row["accuracy"], "accuracy_std": row.get("accuracy_std"),
                "gap_recovered_accuracy": row.get("gap_recovered_accuracy")}
        g = r.get("gan_signals") or {}
        for direction in g.get("directions") or []:
            out["gan_signals"].setdefault(direction["direction"], {})[model] = direction["auroc"]
        if g.get("overall"):
            out["gan_signals"].setdefault("all (highest over an image's directions)", {})[model] = g["overall"]
    return out


def markdown(c):
    models = c["models"]
    cols = " | ".join(models)
    lines = ["# Cleaning benchmark under each noise model, on the same faces", ""]
    for model in models:
        data = c["data"][model]
        a = data.get("annotators")
        who = ""
        if a:
            pair = a.get("two_annotator_agreement")
            who = (f"; {a['annotators']} simulated annotators a face: one right on {a['one_annotator_accuracy']:.0%}"
                   + ("" if pair is None else f", two agree on {pair:.0%}"))
        lines.append(f"- {model}: {data['noisy']} wrong of {data['train_images']} train labels (base rate "
                     f"{_f(data['base_rate'])}), budget {data['budget']} decisions{who}; report {data['report']}")
    lines += ["", "## Detection (train split): AUROC, AP and the precision of each signal's top budget", "",
              f"| signal | AUROC {cols} | AP {cols} | top-budget precision {cols} |",
              "|---|" + "---|" * (3 * len(models))]
    for signal, per in c["detection"].items():
        cells = [_f((per.get(m) or {}).get(k)) for k in ("auroc", "ap", "precision_at_budget") for m in models]
        lines.append(f"| {signal} | " + " | ".join(cells) + " |")
    lines += ["", "## The review queue as reviewed", "", "| | " + cols + " |", "|---|" + "---|" * len(models)]
    for key, label in (("budget_precision", "budget precision (share of decisions on wrong labels)"),
                       ("labels_fixed", "labels fixed"), ("labels_broken", "labels broken"),
                       ("ceiling_noisy_reviewed", "perfect queue: decisions on wrong labels")):
        lines.append(f"| {label} | " + " | ".join(_f(c["queue"][m][key], ".3f" if key == "budget_precision" else "d")
                                                   for m in models) + " |")
    lines += ["", "## Every arm (test split accuracy; share of the baseline-to-oracle gap recovered)", "",
              "| run | " + " | ".join(f"accuracy {m} | gap {m}" for m in models) + " |",
              "|---|" + "---|" * (2 * len(models))]
    for name, per in c["runs"].items():
        cells = []
        for m in models:
            row = per.get(m) or {}
            std = row.get("accuracy_std")
            cells += [_f(row.get("accuracy")) + ("" if std is None else f" +- {std:.3f}"),
                      _f(row.get("gap_recovered_accuracy"), ".0%")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if c["gan_signals"]:
        scores = sorted({s for per in c["gan_signals"].values() for auroc in per.values() for s in auroc})
        lines += ["", "## GAN signals and the margin per generator direction (AUROC for the wrong labels)", "",
                  "| direction | " + " | ".join(f"{s} {m}" for s in scores for m in models) + " |",
                  "|---|" + "---|" * (len(scores) * len(models))]
        for direction, per in c["gan_signals"].items():
            lines.append(f"| {direction} | " + " | ".join(_f((per.get(m) or {}).get(s)) for s in scores
                                                            for m in models) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(reports, out_dir):
    """DIR/comparison.json and DIR/comparison.md; returns the comparison."""
    out = Path(out_dir)
    c = comparison(reports)
    (out / "comparison.md").write_text(markdown(c))
    tmp = out / "comparison.json.tmp"
    tmp.write_text(json.dumps(c, indent=1, default=str))
    os.replace(tmp, out / "comparison.json")
    return c
