"""How well each signal finds the wrong labels, against known truth (synthetic data's truth.csv): AUROC and
average precision, overall and per given label. Benchmarks and reports only; truth never enters the product."""
import csv

from curation.models import Image
from training.labels import CLASSES

SIGNALS = {
    "ssim (raw, published rule)": lambda i: i.ambiguity,
    "gan (normalised, all directions)": lambda i: i.gan_score,
    "cleanlab (1 - label quality)": lambda i: None if i.label_quality is None else 1 - i.label_quality,
    "datalab label (1 - neighbours' label score)": lambda i: (None if i.datalab_label_quality is None
                                                              else 1 - i.datalab_label_quality),
    "datalab outlier (1 - outlier score)": lambda i: (None if i.datalab_outlier_score is None
                                                       else 1 - i.datalab_outlier_score),
    "suspicion (fused)": lambda i: i.suspicion,
}


def read_truth(path):
    with open(path, newline="") as fh:
        return {row["path"]: row["noisy"] in ("1", "true", "True") for row in csv.DictReader(fh)}


def _metrics(y, s):
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(set(y)) < 2:
        return None
    return {"auroc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s)), "n": len(y),
            "noisy": int(sum(y))}


def evaluate_signals(dataset, truth):
    """{signal: {"all": metrics, class name: metrics}} over the train images that carry the signal."""
    images = list(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN))
    report = {}
    for name, get in SIGNALS.items():
        scored = [(truth[i.path], get(i), CLASSES[i.original_label]) for i in images if i.path in truth and get(i) is not None]
        if not scored:
            continue
        per = {"all": _metrics([t for t, _, _ in scored], [s for _, s, _ in scored])}
        for label in CLASSES:
            part = [(t, s) for t, s, c in scored if c == label]
            if part:
                per[label] = _metrics([t for t, _ in part], [s for _, s in part])
        report[name] = per
    return report
