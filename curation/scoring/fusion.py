"""One suspicion score from the two families of signals, built never to be worse than its best input.

Before reviews exist (the default): the classifier's signal leads and the GAN's breaks ties,
    suspicion = rank(1 - label_quality) + GAN_WEIGHT * (rank(gan_score) - its mean),
with ranks scaled to (0, 1]. A plain average of the two ranks is worse than the classifier alone when the GAN
signal is weak (AUROC 0.85 against 0.96 in our first test), so the weaker signal only gets a small weight, and
none at all from a generator that fails its own quality check (generator_works: the classifier does not call its
outputs the target class clearly more often than the sources it started from), whose SSIMs say nothing about the
label. Where only one family exists, it is the score.

Once reviewers have decided enough flagged images (REVIEWED_MIN, both outcomes present), a logistic model over
the signals is fitted to "the reviewer changed the label or excluded the image"; it replaces the default only if
its cross-validated AUROC on those decisions is at least that of the best single signal, so fusion never makes
the ranking worse than its best input on held-out data.

Where a random audit sample exists (curation/review/audit.py), its decisions choose instead, once they hold
AUDIT_MIN_PER_OUTCOME wrong labels and as many confirmed ones (choose_from_audit). They are a random sample of the
dataset, so they measure each signal on the whole queue, not on its top: no spread rule is needed, and decisions
from the queue are not used for the choice at all. The choice is the signal (or the default, or a logistic fit
over the signals, cross-validated on the audit) that ranks the audit's wrong labels best. Picking the best measured
one costs at most the audit's own uncertainty against the truly best: at 20 wrong labels among 100 decisions the
95 % half-width of an AUROC near 0.7 is about 0.14 (Hanley & McNeil), at 40 among 200 about 0.10; below 20 wrong
labels it passes 0.2, where a choice would mostly follow noise, so the default (or the rule below) stands.

Only if the decisions reach below the top of the queue (SPREAD_MIN of them below the median default suspicion):
reviewers who work the queue from the top decide the images the default ranked highest, and among those the
default's own signal varies least, so every other signal looks better there than it is. A fit or a choice made on
them ranked the rest of the queue worse than the default did (tests/curation/test_review_rounds.py: the next 30
held 3 of the 9 wrong labels left, against 8 by the default).
"""
import numpy as np

from curation.review.audit import auroc_interval

# cleanlab's label-quality score. The normalised margin (the given label's probability minus the strongest other
# class's) rather than self-confidence (the given label's probability alone): a label that another class beats is
# more suspect than an equally unsure one that still leads. On the benchmark's faces (out-of-fold models, 16
# epochs, three seeds of data) it found the wrong labels better every time: AUROC 0.841 / 0.859 / 0.854 against
# 0.798 / 0.826 / 0.815, and 68-75 % of the top tenth wrong against 65-68 %.
LABEL_QUALITY = "normalized_margin"

GAN_WEIGHT = 0.1
# A generator direction "works" when its outputs are called the target class at least this much more often
# (absolute share) than the untouched sources were.
WORKS_MARGIN = 0.05
REVIEWED_MIN = 40
MIN_PER_OUTCOME = 8
SPREAD_MIN = 20
# The audit's decisions choose the signals from this many wrong labels, and this many confirmed ones, on.
AUDIT_MIN_PER_OUTCOME = 20
LOGISTIC = "logistic (5-fold CV)"


def _rank(values):
    from gan.scoring import percentile_rank

    return percentile_rank(values)


def generator_works(quality):
    """One direction's quality instrument ({"target_rate", "source_target_rate"}, curation.gans.handler) -> True when
    the classifier calls the generated images the target class at least WORKS_MARGIN more often than their
    sources, False when not, None when it was not measured (no classifier when the CycleGAN trained)."""
    if not quality or quality.get("target_rate") is None or quality.get("source_target_rate") is None:
        return None
    return quality["target_rate"] >= quality["source_target_rate"] + WORKS_MARGIN


def default_suspicion(label_quality, gan_score, gan_trusted=None):
    """label_quality, gan_score: arrays with NaN where a signal is missing for an image. gan_trusted: per image,
    whether the generator behind its GAN score works (None: all are trusted); an untrusted one adds nothing."""
    cl, gan = _rank(-np.asarray(label_quality, float)), _rank(np.asarray(gan_score, float))
    has_cl, has_gan = ~np.isnan(cl), ~np.isnan(gan)
    weight = GAN_WEIGHT * (np.ones(len(cl)) if gan_trusted is None else np.asarray(gan_trusted, float))
    # Centred on the mean rank: an image without a (trusted) GAN score is neither raised nor lowered against
    # those with one; the GAN only reorders images among their classifier-signal neighbours.
    centred = gan - np.nanmean(gan) if has_gan.any() else gan
    out = np.where(has_cl, cl + weight * np.nan_to_num(centred), np.nan)
    out = np.where(~has_cl & has_gan, gan, out)
    return out


def features(label_quality, gan_score, ambiguity, classifier_flagged, datalab_label_quality=None):
    """The logistic fit's inputs; datalab_label_quality (Datalab's label score from the embeddings' neighbours, NaN
    where missing) adds a column when given, and is then a candidate of its own in choose_from_reviews."""
    lq = np.nan_to_num(np.asarray(label_quality, float), nan=0.5)
    columns = [
        np.log(np.clip(lq, 1e-6, 1)), np.nan_to_num(np.asarray(gan_score, float)),
        np.nan_to_num(np.asarray(ambiguity, float)), np.asarray(classifier_flagged, float),
    ]
    if datalab_label_quality is not None:
        dl = np.nan_to_num(np.asarray(datalab_label_quality, float), nan=0.5)
        columns.append(np.log(np.clip(dl, 1e-6, 1)))
    return np.column_stack(columns)


def below_median(default, reviewed):
    """How many of the `reviewed` images (a mask) have a `default` suspicion below the median of all images'."""
    default = np.asarray(default, float)
    known = ~np.isnan(default)
    if not known.any():
        return 0
    return int((np.asarray(reviewed, bool) & known & (default < np.median(default[known]))).sum())


def _logistic_held_out(X, y, seed):
    """The logistic fit over the signals (unfitted) and its 5-fold cross-validated probabilities on X."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    held_out = cross_val_predict(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                                 method="predict_proba")[:, 1]
    return model, held_out


def choose_from_reviews(X, y, candidates, seed=0, spread=None):
    """Pick how to score suspicion from reviewed images. Returns (choice, fitted model or None, report).

    candidates: {name: scores on the reviewed images, higher = more suspicious}; it holds "default" and each
    single signal. The logistic fit is used only if its cross-validated AUROC is at least the best candidate's;
    otherwise the best candidate is, so the choice is never worse than its best input on these decisions.
    spread: how many reviewed images lie below the median default suspicion (below_median; None: not checked);
    under SPREAD_MIN the default is kept, as the module says why.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, int)
    report = {"reviewed": int(len(y)), "changed": int(y.sum())}
    if len(y) < REVIEWED_MIN or min(y.sum(), len(y) - y.sum()) < MIN_PER_OUTCOME:
        report.update(used="default", why=f"needs {REVIEWED_MIN} reviewed images, {MIN_PER_OUTCOME} of each outcome")
        return "default", None, report
    report["auroc"] = {k: float(roc_auc_score(y, np.nan_to_num(np.asarray(v, float), nan=-1e9)))
                       for k, v in candidates.items()}
    model, held_out = _logistic_held_out(X, y, seed)
    report["auroc"][LOGISTIC] = float(roc_auc_score(y, held_out))
    best_name = max(candidates, key=lambda k: report["auroc"][k])
    if spread is not None:
        report["below_median"] = int(spread)
        if spread < SPREAD_MIN:
            report.update(used="default", why=f"needs {SPREAD_MIN} reviewed images below the median suspicion: "
                                              "decisions from the top of the queue only cannot say how to rank "
                                              "the rest")
            return "default", None, report
    if report["auroc"][LOGISTIC] >= report["auroc"][best_name]:
        model.fit(X, y)
        report["used"] = "logistic"
        return "logistic", model, report
    report["used"] = best_name
    return best_name, None, report


def audit_enough(wrong):
    """Whether the audit's decisions (`wrong`: 1 for a wrong label, 0 for a confirmed one) may choose the signals."""
    wrong = np.asarray(wrong, int)
    return min(int(wrong.sum()), len(wrong) - int(wrong.sum())) >= AUDIT_MIN_PER_OUTCOME


def choose_from_audit(X, wrong, candidates, seed=0):
    """Pick how to score suspicion from the audit's random sample. Returns (choice, fitted model or None, report)
    as choose_from_reviews does; report["source"] is "audit" and report["interval"] holds each AUROC's 95 %
    interval (Hanley & McNeil, as the audit's estimates give them).

    X: the logistic fit's inputs on the audited images; wrong: their outcomes; candidates: {name: scores on them,
    higher = more suspicious}, "default" among them. The candidate with the highest AUROC is used, the default on a
    tie; the logistic fit only where its cross-validated AUROC is above every candidate's."""
    wrong = np.asarray(wrong, int)
    report = {"source": "audit", "reviewed": int(len(wrong)), "changed": int(wrong.sum())}
    if not audit_enough(wrong):
        report.update(used="default", why=f"needs {AUDIT_MIN_PER_OUTCOME} wrong labels and {AUDIT_MIN_PER_OUTCOME} "
                                          "confirmed ones among the audit's decisions")
        return "default", None, report
    measured = {k: auroc_interval(np.nan_to_num(np.asarray(v, float), nan=-1e9), wrong) for k, v in candidates.items()}
    model, held_out = _logistic_held_out(X, wrong, seed)
    measured[LOGISTIC] = auroc_interval(held_out, wrong)
    report["auroc"] = {k: m["auroc"] for k, m in measured.items()}
    report["interval"] = {k: [m["low"], m["high"]] for k, m in measured.items()}
    best = max(candidates, key=lambda k: (report["auroc"][k], k == "default"))
    if report["auroc"][LOGISTIC] > report["auroc"][best]:
        model.fit(X, wrong)
        report["used"] = "logistic"
        return "logistic", model, report
    report["used"] = best
    return best, None, report
