"""The comparison's statistics against known values and against scipy.stats (installed with scikit-learn)."""
import numpy as np
import pytest
from scipy import stats

from training.significance import PairedTest, mcnemar_exact, paired_test, randomisation_test, wilson_interval


def test_wilson_interval_of_known_proportions():
    assert wilson_interval(50, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    low, high = wilson_interval(76, 152)  # a chance-level 50 % on 152 test faces spans about ±8 points
    assert (low, high) == pytest.approx((0.4215, 0.5785), abs=1e-4)


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (3, 7), (50, 100), (180, 200), (999, 4000)])
def test_wilson_interval_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


@pytest.mark.parametrize("k, n, message", [(1, 0, "n must be at least 1"), (5, 4, "between 0 and n=4"),
                                           (-1, 4, "between 0 and n=4"), (1.5, 4, "whole numbers")])
def test_wilson_interval_names_bad_input(k, n, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(k, n)


def test_mcnemar_exact_of_known_values():
    assert mcnemar_exact(10, 2) == pytest.approx(0.03857, abs=1e-5)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(7, 7) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(8, 4) == pytest.approx(0.38770, abs=1e-5)


@pytest.mark.parametrize("b, c", [(1, 0), (3, 9), (10, 2), (40, 55), (100, 20), (510, 490), (2500, 2400)])
def test_mcnemar_exact_matches_scipys_binomial_test(b, c):
    expected = stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("b, c", [(-1, 2), (1.5, 2), (True, 2)])
def test_mcnemar_exact_names_bad_input(b, c):
    with pytest.raises(ValueError, match="b must be a whole number"):
        mcnemar_exact(b, c)


def test_paired_test_counts_only_shared_images_with_the_same_label():
    # baseline: images 1..6; other: images 3..8. Shared 3, 4, 5, 6; image 6 has another label in the other run.
    base = ([1, 2, 3, 4, 5, 6], [0, 0, 1, 1, 2, 2], [0, 1, 1, 0, 2, 2])
    other = ([8, 7, 6, 5, 4, 3], [0, 0, 3, 2, 1, 1], [0, 0, 3, 0, 1, 0])
    # image 3: base right, other wrong (b); 4: base wrong, other right (c); 5: base right, other wrong (b)
    test = paired_test(base, other)
    assert test == PairedTest(n=3, both_right=0, b=2, c=1, p=1.0, label_mismatch=1)
    assert not test.significant
    recall = paired_test(base, other, true_label=1)  # images 3 and 4
    assert (recall.n, recall.b, recall.c) == (2, 1, 1)


def test_paired_test_of_a_clear_difference_is_significant():
    ids = np.arange(200)
    labels = np.zeros(200, dtype=int)
    strong = np.where(ids < 180, 0, 1)  # right on 180
    weak = np.where(ids < 100, 0, 1)  # right on 100, all of them among the strong one's
    test = paired_test((ids, labels, weak), (ids, labels, strong))
    assert (test.n, test.both_right, test.b, test.c) == (200, 100, 0, 80)
    assert test.significant and test.p < 1e-20
    assert paired_test((ids, labels, strong), (ids, labels, strong)).p == 1.0


def test_paired_test_names_malformed_predictions():
    with pytest.raises(ValueError, match="one length"):
        paired_test(([1, 2], [0, 0], [0]), ([1, 2], [0, 0], [0, 0]))
    with pytest.raises(ValueError, match="appears twice"):
        paired_test(([1, 1], [0, 0], [0, 0]), ([1, 2], [0, 0], [0, 0]))
    with pytest.raises(ValueError, match=r"other must be \(ids, labels, predicted\)"):
        paired_test(([1], [0], [0]), None)


def _sklearn_deltas(y, a, b):
    from sklearn.metrics import f1_score, precision_score

    kw = {"labels": list(range(8)), "zero_division": 0}
    return (f1_score(y, b, average="macro", **kw) - f1_score(y, a, average="macro", **kw),
            precision_score(y, b, average=None, **kw) - precision_score(y, a, average=None, **kw))


def test_randomisation_test_measures_macro_f1_and_precision_as_sklearn_does():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, 300)  # class 7 never occurs: it counts 0 in macro F1, as in the training job's metrics
    a = np.where(rng.random(300) < 0.5, y, rng.integers(0, 8, 300))
    b = np.where(rng.random(300) < 0.6, y, rng.integers(0, 8, 300))
    ids = np.arange(300)
    test = randomisation_test((ids, y, a), (ids[::-1], y[::-1], b[::-1]), num_classes=8, rounds=200)
    f1, precision = _sklearn_deltas(y, a, b)
    assert test.n == 300 and test.rounds == 200
    assert test.macro_f1_delta == pytest.approx(f1) and test.precision_delta == pytest.approx(tuple(precision))
    assert test == randomisation_test((ids, y, a), (ids, y, b), num_classes=8, rounds=200)  # seeded


def test_randomisation_p_value_approaches_the_exact_permutation_p_value():
    # Ten images: all 1024 swaps can be counted, which gives the exact two-sided p-value of the macro F1 delta.
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    a = np.array([0, 1, 0, 1, 2, 1, 2, 0, 1, 2])
    b = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 2])
    ids = np.arange(10)
    swaps = ((np.arange(1024)[:, None] >> np.arange(10)) & 1).astype(bool)
    def f1(p):  # macro F1 by its definition, 2 TP / (predicted + true) per class, in plain Python
        return sum(2 * sum((p == k) & (y == k)) / (sum(p == k) + sum(y == k)) for k in range(3)) / 3

    observed = abs(f1(b) - f1(a))
    exact = np.mean([abs(f1(np.where(s, a, b)) - f1(np.where(s, b, a))) >= observed - 1e-12 for s in swaps])
    test = randomisation_test((ids, y, a), (ids, y, b), num_classes=3, rounds=20000)
    assert 0.05 < exact < 0.5  # a case where the answer matters
    assert test.macro_f1_p == pytest.approx(exact, abs=0.015)


def test_randomisation_test_of_identical_and_of_clearly_different_runs():
    ids = np.arange(200)
    y = ids % 8
    strong = np.where(ids < 180, y, (y + 1) % 8)
    weak = np.where(ids < 100, y, (y + 1) % 8)
    same = randomisation_test((ids, y, weak), (ids, y, weak), num_classes=8, rounds=100)
    assert same.macro_f1_p == 1.0 and set(same.precision_p) == {1.0} and same.macro_f1_delta == 0
    clear = randomisation_test((ids, y, weak), (ids, y, strong), num_classes=8, rounds=999)
    assert clear.macro_f1_delta > 0.3 and clear.macro_f1_p == 1 / 1000


def test_randomisation_test_names_bad_input():
    ok = ([1, 2], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="num_classes must be"):
        randomisation_test(ok, ok, num_classes=0)
    with pytest.raises(ValueError, match="rounds must be"):
        randomisation_test(ok, ok, num_classes=2, rounds=0)
    with pytest.raises(ValueError, match=r"predicted classes must lie in 0..1"):
        randomisation_test(ok, ([1, 2], [0, 1], [0, 5]), num_classes=2)
