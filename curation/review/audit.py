"""The random audit slice of the review queue, and the estimates it allows on the user's own data.

A curator sets an audit share per dataset (Dataset.audit_share, default AUDIT_SHARE_DEFAULT; 0: off). When a
reviewer claims a new card from the default queue (no filters), it is an audit card with that probability: an image
drawn at random instead of the most suspicious one. The card looks the same; the decision on it is recorded as an
audit decision (LabelChange.audit).

The draw. Every image carries a uniform random audit_key, drawn once. An audit card of given label L is the
unreviewed image of L with the lowest key, so the audit walks through each label in a random order fixed in
advance; t_L, the highest key it has served in L, grows as it goes. Every image of L with a key up to t_L is then
decided, or was served: the images the queue had already decided (its most suspicious ones) are part of the sample
as much as the ones the audit served, so the sample {key <= t_L} stays a simple random sample of L whatever the
queue took first. Stratification: each audit card goes to the label whose t_L is lowest, so the thresholds stay
level and the union over labels is a proportional stratified sample; the overall estimate uses the common
threshold min t_L, which is an exact simple random sample of the dataset.

The estimates (dataset_audit_estimates) treat the reviewers' decisions as right. Where several reviewers voted on
an image (Dataset.reviews_required > 1) and CROWDLAB judged the round (curation/review/crowdlab.py), the decision
counts as wrong-label with the probability CROWDLAB gives its consensus: a confirmed label is wrong with
1 - quality, a changed one with quality. An interval is shown only from MIN_DECISIONS audit decisions on.
"""
import math
import random

import numpy as np
from django.db.models import Count, Max, Q

from curation.models import AUDIT_SHARE_DEFAULT, AUDIT_SHARE_MAX, Dataset, Image
from curation.review.crowdlab import dataset_crowdlab
from training.labels import CLASSES

# Fewer decisions than this give no interval: "not enough audit decisions yet". At 20 a Wilson interval around a
# 10 % rate is already about 0.03-0.30, wide but honest; below it the normal approximations behind the AUROC's
# interval are not worth printing either.
MIN_DECISIONS = 20
Z95 = 1.959963984540054
EXCLUDED = "excluded"
ASSUMPTIONS = ("Reviewers' decisions are treated as right: a confirmed label as right, a relabelled or excluded "
               "image as a wrong label. Where several reviewers voted on an image, the reviewers' own error is "
               "taken from CROWDLAB: the decision counts as a wrong label with the probability CROWDLAB's "
               "consensus quality gives it. The sample is every image of a given label up to the audit's random "
               "draw so far, including those the queue decided first, so it is a random sample of the dataset; "
               "images of it skipped or still held are left out and counted as pending.")

_rng = random.Random()


def audit_draws_seed(seed):
    """Make which claims become audit cards repeatable from here on (a benchmark's seed); the product never calls it:
    its draws are fresh each process."""
    _rng.seed(seed)


def audit_share_check(value):
    """The audit share as a float in [0, AUDIT_SHARE_MAX]; ValueError naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"audit share must be a number 0-{AUDIT_SHARE_MAX:g} (0 turns the audit off), not {value!r}")
    try:
        share = float(str(value).strip().rstrip("%")) / (100 if str(value).strip().endswith("%") else 1)
    except ValueError:
        raise ValueError(f"audit share must be a number 0-{AUDIT_SHARE_MAX:g} (0 turns the audit off), "
                         f"not {value!r}") from None
    if not math.isfinite(share) or not 0.0 <= share <= AUDIT_SHARE_MAX:
        raise ValueError(f"audit share must be 0-{AUDIT_SHARE_MAX:g} (a share of the cards served; 0 turns the "
                         f"audit off), not {value}")
    return share


def dataset_audit_share_set(*, dataset_id, audit_share):
    """Set the dataset's audit share; returns it. Raises ValueError (named, nothing changed) or Dataset.DoesNotExist."""
    value = audit_share_check(audit_share)
    if not Dataset.objects.filter(pk=dataset_id).update(audit_share=value):
        raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
    return value


def audit_turn(*, dataset, filters):
    """Whether the next new card is an audit card: only in the default queue (no filter but "unreviewed"), with the
    dataset's audit share as probability."""
    if not dataset.audit_share or any(v not in (None, "", Image.Status.UNREVIEWED) for v in (filters or {}).values()):
        return False
    return _rng.random() < dataset.audit_share


def audit_labels_lagging(*, dataset):
    """Given-label codes in the order the audit should draw from them: the label whose audit threshold t_L (highest
    key served) is lowest first, labels never drawn before all. One query over the (few) audit images."""
    reached = dict(Image.objects.filter(dataset=dataset, audit=True).values("original_label")
                   .annotate(t=Max("audit_key")).values_list("original_label", "t"))
    return sorted(range(len(CLASSES)), key=lambda code: reached.get(code, -1.0))


# --- estimates ----------------------------------------------------------------------------------------------------
def wilson(successes, n, *, z=Z95):
    """Wilson score interval of successes / n; successes may be fractional (CROWDLAB-weighted counts)."""
    if n <= 0:
        raise ValueError(f"n must be at least 1; got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie between 0 and n={n}; got {successes}")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc_interval(scores, wrong, *, z=Z95):
    """AUROC of `scores` (higher: more suspect) against `wrong` (0/1), with Hanley & McNeil's (1982) 95 % interval.
    None when one outcome is missing."""
    scores, wrong = np.asarray(scores, float), np.asarray(wrong, bool)
    pos, neg = scores[wrong], scores[~wrong]
    n1, n0 = len(pos), len(neg)
    if not n1 or not n0:
        return None
    # Mann-Whitney with ties counted half.
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    pos_ranks = np.empty(len(values))
    pos_ranks[order] = ranks
    auc = (pos_ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = math.sqrt(max(0.0, auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0))
    return {"auroc": float(auc), "low": max(0.0, auc - z * se), "high": min(1.0, auc + z * se),
            "n": n1 + n0, "wrong": n1}


# Each signal as a score where higher means more suspect; None where the image lacks it.
SIGNALS = (
    ("suspicion (the queue's order)", lambda r: r["suspicion"]),
    ("cleanlab margin (1 - label quality)", lambda r: None if r["label_quality"] is None else 1 - r["label_quality"]),
    ("datalab neighbours (1 - label score)",
     lambda r: None if r["datalab_label_quality"] is None else 1 - r["datalab_label_quality"]),
    ("datalab outlier (1 - outlier score)",
     lambda r: None if r["datalab_outlier_score"] is None else 1 - r["datalab_outlier_score"]),
    ("gan (normalised SSIM)", lambda r: r["gan_score"]),
    ("ssim (raw, the published rule)", lambda r: r["ambiguity"]),
)
_FIELDS = ("id", "original_label", "label", "status", "version", "audit_key", "suspicion", "label_quality",
           "datalab_label_quality", "datalab_outlier_score", "gan_score", "ambiguity")


def _proportion(wrong, n):
    """{"n", "wrong", "enough", and with enough decisions "estimate", "low", "high"}."""
    out = {"n": n, "wrong": round(wrong, 3), "enough": n >= MIN_DECISIONS}
    if out["enough"]:
        low, high = wilson(wrong, n)
        out.update(estimate=wrong / n, low=low, high=high)
    return out


def _crowdlab_weights(dataset, rows):
    """{image id: probability its given label is wrong} for decided sample images CROWDLAB judged, where the
    dataset needs several reviews."""
    if dataset.reviews_required < 2:
        return {}
    rounds = dataset_crowdlab(dataset).rounds
    latest = {}
    for (image_id, version), judged in rounds.items():
        if image_id not in latest or version > latest[image_id][0]:
            latest[image_id] = (version, judged)
    out = {}
    for r in rows:
        judged = latest.get(r["id"], (None, None))[1]
        if judged is None or r["status"] == Image.Status.EXCLUDED or judged.get("quality") is None:
            continue
        q = float(judged["quality"])
        out[r["id"]] = q if r["status"] == Image.Status.RELABELLED else 1.0 - q
    return out


def _wrong(row, weights):
    """How wrong a decided sample image's given label is: CROWDLAB's probability where it judged the votes
    (`weights`, _crowdlab_weights), else 0 for a confirmed label and 1 for a relabelled or excluded image."""
    if row["id"] in weights:
        return weights[row["id"]]
    return 0.0 if row["status"] == Image.Status.CONFIRMED else 1.0


def _audit_thresholds(dataset):
    """{given label code: t_L}, how far the audit's random order has reached in each label it has drawn from (1.0
    where it has walked through the whole label)."""
    reached = dict(Image.objects.filter(dataset=dataset, audit=True).values("original_label")
                   .annotate(t=Max("audit_key")).values_list("original_label", "t"))
    thresholds = {}
    for code, t in reached.items():
        # A label the audit has walked through (nothing unreviewed beyond t_L) is sampled whole.
        beyond = Image.objects.filter(dataset=dataset, original_label=code, status=Image.Status.UNREVIEWED,
                                      audit_key__gt=t).exists()
        thresholds[code] = t if beyond else 1.0
    return thresholds


def _in_sample(images, thresholds):
    """`images` (a queryset) narrowed to the audit's sample: each label's images up to its threshold."""
    where = Q(pk__in=[])
    for code, t in thresholds.items():
        where |= Q(original_label=code, audit_key__lte=t)
    return images.filter(where)


def audit_sample_decided(*, dataset, split=None):
    """{image id: True when its given label was wrong (relabelled or excluded), False when confirmed} for the
    decided images of the audit's random sample of `dataset` (of `split` when given): unbiased decisions, whatever
    the queue served first, for the fusion's choice of signals (curation/scoring/fusion.py). Votes CROWDLAB judged
    count by their consensus, as in the estimates."""
    images = Image.objects.filter(dataset=dataset)
    if split is not None:
        images = images.filter(split=split)
    rows = [r for r in _in_sample(images, _audit_thresholds(dataset)).values("id", "status")
            if r["status"] != Image.Status.UNREVIEWED]
    weights = _crowdlab_weights(dataset, rows)
    return {r["id"]: _wrong(r, weights) >= 0.5 for r in rows}


def dataset_audit_estimates(dataset):
    """What the audit says about `dataset`: the share of wrong labels overall and per given label (Wilson 95 %
    intervals), the confusion from given to reviewed label, each signal's AUROC on the audit decisions, and the
    share still wrong after the review so far; each with the number of audit decisions it rests on, and no interval
    under MIN_DECISIONS. A JSON-able dict; see the module's docstring for what it assumes."""
    sizes = dict(Image.objects.filter(dataset=dataset).values("original_label").annotate(n=Count("id"))
                 .values_list("original_label", "n"))
    thresholds = _audit_thresholds(dataset)
    rows = list(_in_sample(Image.objects.filter(dataset=dataset), thresholds).values(*_FIELDS))
    decided = [r for r in rows if r["status"] != Image.Status.UNREVIEWED]
    weights = _crowdlab_weights(dataset, decided)

    def wrong_of(r):
        return _wrong(r, weights)

    # Overall: the common threshold, over every label that has images (none until each was drawn once).
    common = min((thresholds.get(code, 0.0) for code in sizes), default=0.0)
    overall_rows = [r for r in decided if r["audit_key"] <= common]
    overall = _proportion(sum(wrong_of(r) for r in overall_rows), len(overall_rows))
    overall["pending"] = sum(1 for r in rows if r["status"] == Image.Status.UNREVIEWED and r["audit_key"] <= common)
    per_label = []
    for code, name in enumerate(CLASSES):
        if code not in sizes:
            continue
        mine = [r for r in decided if r["original_label"] == code]
        per_label.append({"label": name, "images": sizes[code], **_proportion(sum(wrong_of(r) for r in mine),
                                                                              len(mine))})
    confusion = []
    for code, name in enumerate(CLASSES):
        mine = [r for r in decided if r["original_label"] == code]
        if not mine:
            continue
        counts = {}
        for r in mine:
            to = EXCLUDED if r["status"] == Image.Status.EXCLUDED else CLASSES[r["label"]]
            counts[to] = counts.get(to, 0) + 1
        confusion.append({"given": name, "n": len(mine),
                          "reviewed": {k: counts[k] for k in (*CLASSES, EXCLUDED) if k in counts}})
    signals = []
    for name, get in SIGNALS:
        scored = [(get(r), wrong_of(r) >= 0.5) for r in decided if get(r) is not None]
        entry = {"signal": name, "n": len(scored), "enough": len(scored) >= MIN_DECISIONS}
        if entry["enough"]:
            measured = auroc_interval([s for s, _ in scored], [w for _, w in scored])
            if measured is None:
                entry.update(enough=False, why="all of its audit decisions have the same outcome")
            else:
                entry.update(measured)
        if scored or name.startswith("suspicion"):
            signals.append(entry)
    total = sum(sizes.values())
    corrected = Image.objects.filter(dataset=dataset, status__in=(Image.Status.RELABELLED,
                                                                    Image.Status.EXCLUDED)).count()
    remaining = {"n": overall["n"], "enough": overall["enough"], "images": total, "corrected": corrected}
    if overall["enough"] and total:
        done = corrected / total
        remaining.update(estimate=max(0.0, overall["estimate"] - done), low=max(0.0, overall["low"] - done),
                         high=max(0.0, overall["high"] - done))
    return {
        "audit_share": dataset.audit_share, "min_decisions": MIN_DECISIONS, "decisions": len(decided),
        "audit_cards": Image.objects.filter(dataset=dataset, audit=True).count(),
        "overall": overall, "per_label": per_label, "confusion": confusion, "signals": signals,
        "remaining": remaining, "crowdlab_weighted": len(weights), "assumptions": ASSUMPTIONS,
    }


__all__ = ["AUDIT_SHARE_DEFAULT", "AUDIT_SHARE_MAX", "MIN_DECISIONS", "audit_sample_decided", "audit_share_check",
           "audit_turn", "audit_draws_seed", "audit_labels_lagging", "dataset_audit_share_set", "dataset_audit_estimates", "wilson", "auroc_interval"]
