"""How sure a test figure is: a 95 % interval on an accuracy, and whether two classifiers differ on the same test
images: McNemar's exact test on the images where exactly one of them is right (accuracy, a class's recall), and a
paired approximate randomisation test for figures that do not split per image (macro F1, a class's precision).
Plain Python and numpy; no scipy import, so the web process that draws the run comparison stays light. The tests
check the figures against scipy.stats, scikit-learn and an exact permutation count."""
import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
ALPHA = 0.05


def wilson_interval(successes, n, *, z=Z95):
    """The Wilson score interval (low, high) of a proportion of `successes` out of `n` (95 % by default)."""
    if isinstance(successes, bool) or isinstance(n, bool) or int(successes) != successes or int(n) != n:
        raise ValueError(f"successes and n are whole numbers; got {successes!r} and {n!r}")
    successes, n = int(successes), int(n)
    if n <= 0:
        raise ValueError(f"n must be at least 1; got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie between 0 and n={n}; got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b, c):
    """McNemar's exact two-sided p-value for `b` and `c` discordant pairs (b: only the first classifier right, c:
    only the second): twice the binomial(b + c, 1/2) tail at min(b, c), at most 1; 1.0 when there are none."""
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{name} must be a whole number of images, at least 0; got {value!r}")
    b, c = int(b), int(c)
    n = b + c
    if n == 0 or b == c:
        return 1.0
    k = min(b, c)
    # log of C(n, i) / 2**n for i = 0..k, summed stably: exact enough for any test set (checked against scipy).
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
                 for i in range(k + 1)]
    top = max(log_terms)
    tail = math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms)
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class PairedTest:
    """Two classifiers on the test images both were tested on (and gave the same true label).

    n: such images; both_right; b: only the baseline right; c: only the other right; p: McNemar's exact p-value;
    label_mismatch: images both were tested on but under different true labels (left out)."""
    n: int
    both_right: int
    b: int
    c: int
    p: float
    label_mismatch: int = 0

    @property
    def significant(self):
        return self.p < ALPHA


def paired_test(base, other, *, true_label=None):
    """McNemar's exact test between two runs' test predictions, each given as (ids, labels, predicted) arrays of the
    same length. Only images in both count, and of those only ones both label alike; `true_label` keeps only images
    of that (baseline) label, which tests a class's recall. Raises ValueError naming a malformed argument."""
    (base_ids, base_labels, base_pred), (ids, labels, pred) = (_triple(base, "base"), _triple(other, "other"))
    shared, bi, oi = np.intersect1d(base_ids, ids, assume_unique=False, return_indices=True)
    same = base_labels[bi] == labels[oi]
    mismatch = int((~same).sum())
    keep = same
    if true_label is not None:
        keep = keep & (base_labels[bi] == true_label)
    bi, oi = bi[keep], oi[keep]
    base_right = base_pred[bi] == base_labels[bi]
    right = pred[oi] == labels[oi]
    b = int((base_right & ~right).sum())
    c = int((~base_right & right).sum())
    return PairedTest(n=int(keep.sum()), both_right=int((base_right & right).sum()), b=b, c=c,
                      p=mcnemar_exact(b, c), label_mismatch=mismatch)


def _triple(value, name):
    try:
        ids, labels, pred = (np.asarray(a) for a in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (ids, labels, predicted) arrays") from None
    if not (ids.ndim == labels.ndim == pred.ndim == 1 and len(ids) == len(labels) == len(pred)):
        raise ValueError(f"{name}: ids, labels and predicted must be flat arrays of one length; got shapes "
                         f"{ids.shape}, {labels.shape}, {pred.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{name}: an image id appears twice in the predictions")
    return ids, labels, pred


@dataclass(frozen=True)
class RandomisationTest:
    """A paired approximate randomisation test of macro F1 and each class's precision between two runs on the test
    images both predicted (and labelled alike): each round swaps the two runs' predictions on a random half of the
    images; p is the share of rounds (counting the observed one) whose difference is at least as large.

    n: such images; rounds; macro_f1 and precision: the observed difference (other minus baseline) and p."""
    n: int
    rounds: int
    macro_f1_delta: float
    macro_f1_p: float
    precision_delta: tuple
    precision_p: tuple


def randomisation_test(base, other, *, num_classes, rounds=1000, seed=0):
    """RandomisationTest of two runs' test predictions, each (ids, labels, predicted) as paired_test takes them.
    Macro F1 is sklearn's over all `num_classes` (a class with no images and no predictions counts 0). Seeded: the
    same predictions always give the same p-values."""
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number, at least 1; got {num_classes!r}")
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be a whole number, at least 1; got {rounds!r}")
    (base_ids, base_labels, base_pred), (ids, labels, pred) = (_triple(base, "base"), _triple(other, "other"))
    _, bi, oi = np.intersect1d(base_ids, ids, return_indices=True)
    same = base_labels[bi] == labels[oi]
    bi, oi = bi[same], oi[same]
    y = base_labels[bi].astype(np.int64)
    pa, pb = base_pred[bi].astype(np.int64), pred[oi].astype(np.int64)
    for name, values in (("labels", y), ("predicted classes", np.concatenate([pa, pb]))):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}")
    f1_a, prec_a = _f1_precision(pa[None], y, num_classes)
    f1_b, prec_b = _f1_precision(pb[None], y, num_classes)
    d_f1, d_prec = f1_b[0] - f1_a[0], prec_b[0] - prec_a[0]
    rng = np.random.default_rng(seed)
    hits_f1, hits_prec = 1, np.ones(num_classes, dtype=np.int64)  # the observed assignment is one of them
    chunk = max(1, min(rounds, 2_000_000 // max(len(y), 1)))
    done = 0
    while done < rounds:
        r = min(chunk, rounds - done)
        swap = rng.random((r, len(y))) < 0.5
        f1_sa, prec_sa = _f1_precision(np.where(swap, pb, pa), y, num_classes)
        f1_sb, prec_sb = _f1_precision(np.where(swap, pa, pb), y, num_classes)
        hits_f1 += int((np.abs(f1_sb - f1_sa) >= abs(d_f1) - 1e-12).sum())
        hits_prec += (np.abs(prec_sb - prec_sa) >= np.abs(d_prec) - 1e-12).sum(0)
        done += r
    return RandomisationTest(n=len(y), rounds=int(rounds), macro_f1_delta=float(d_f1),
                             macro_f1_p=hits_f1 / (rounds + 1), precision_delta=tuple(map(float, d_prec)),
                             precision_p=tuple(float(h) / (rounds + 1) for h in hits_prec))


def _f1_precision(predicted, y, k):
    """Macro F1 (R,) and per-class precision (R, k) of each row of `predicted` (R, n) against labels `y` (n,),
    zero where undefined (sklearn's zero_division=0)."""
    rows = predicted.shape[0]
    offset = (np.arange(rows) * k)[:, None]
    tp = np.bincount((offset + y[None]).ravel(), weights=(predicted == y[None]).ravel(),
                     minlength=rows * k).reshape(rows, k)
    called = np.bincount((offset + predicted).ravel(), minlength=rows * k).reshape(rows, k)
    support = np.bincount(y, minlength=k)[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(called > 0, tp / called, 0.0)
        f1 = np.where(called + support > 0, 2 * tp / (called + support), 0.0)
    return f1.mean(1), precision
