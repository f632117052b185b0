"""Measure CROWDLAB's reviewer quality and consensus (curation/review/crowdlab.py, the function the product calls)
against known truth: simulated reviewers with individual error rates vote on a synthetic dataset, K of them per
image; the Spearman correlation of each reviewer's estimated quality with 1 - their true error rate (issue #18's
goal: at least 0.8 with 5 reviewers), and the accuracy of CROWDLAB's consensus against a majority vote (ties broken
by the classifier, as cleanlab's majority vote does) and the classifier alone. Also, for the rounds whose votes
differ, how many a consensus threshold would apply and how often those applied labels are right.

A reviewer's mistake names the class's confusable partner (training.synthetic_faces.PARTNER) in 70 % of cases, any
other class otherwise: the hurried annotator of curation/cleaning_bench/reviewers.py (its idea, not its code).

The classifier's probabilities (--probs):
- logreg (default): a tiny classifier, scikit-learn's logistic regression on 16-dimensional class-prototype
  features with noise, trained on the imported labels (20 % wrong, as the synthetic faces' default) and read
  out-of-fold (5 folds), as the product reads a run's out-of-fold probabilities. Seconds, not a CNN: training the
  product's classifier on faces would measure the classifier, not CROWDLAB;
- noisy-truth: Dirichlet noise with a bonus on the true class (no training at all).

    python -m benchmarks.crowdlab                       # 2,000 images, 5 reviewers, 3 votes each, seeds 0 1 2
    python -m benchmarks.crowdlab --votes 2 --probs noisy-truth
"""
import argparse
import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from benchmarks._django import setup

setup()

from curation.review.crowdlab import crowdlab_fit
from training.labels import CLASSES, CODE
from training.synthetic_faces import PARTNER

GOAL = 0.8  # Spearman, 5 reviewers (issue #18)
PARTNER_SHARE = 0.7
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
K = len(CLASSES)


def _wrong_class(rng, true):
    if rng.random() < PARTNER_SHARE:
        return CODE[PARTNER[CLASSES[true]]]
    return int((true + rng.integers(1, K)) % K)


def simulate_votes(rng, truth, error_rates, votes_per_image):
    """(images, reviewers) label codes, NaN where a reviewer did not vote; each image gets `votes_per_image`
    reviewers drawn at random, each right with probability 1 - their error rate."""
    labels = np.full((len(truth), len(error_rates)), np.nan)
    for i, true in enumerate(truth):
        for m in rng.choice(len(error_rates), votes_per_image, replace=False):
            labels[i, m] = true if rng.random() >= error_rates[m] else _wrong_class(rng, true)
    return labels


def classifier_probs(rng, truth, source, label_noise=0.2, dims=16, spread=1.3):
    """(images, classes) probabilities: out-of-fold logistic regression on noisy labels, or noisy truth."""
    if source == "noisy-truth":
        probs = rng.dirichlet(np.ones(K), len(truth))
        probs[np.arange(len(truth)), truth] += 1.2 * rng.random(len(truth))
        return probs / probs.sum(1, keepdims=True)
    prototypes = rng.normal(size=(K, dims))
    for name, partner in PARTNER.items():  # partners look alike, as the faces do
        prototypes[CODE[partner]] = 0.5 * prototypes[CODE[partner]] + 0.5 * prototypes[CODE[name]]
    features = prototypes[truth] + spread * rng.normal(size=(len(truth), dims))
    given = np.array([_wrong_class(rng, t) if rng.random() < label_noise else t for t in truth])
    model = LogisticRegression(max_iter=500)
    return cross_val_predict(model, features, given, cv=5, method="predict_proba")


def majority_vote(labels, probs):
    """Most voted class per image, ties broken by the classifier's probability."""
    out = np.empty(len(labels), dtype=int)
    for i, row in enumerate(labels):
        counts = np.bincount(row[~np.isnan(row)].astype(int), minlength=K)
        tied = np.flatnonzero(counts == counts.max())
        out[i] = tied[np.argmax(probs[i, tied])]
    return out


def run(seed, *, n, error_rates, votes_per_image, source):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, n)
    labels = simulate_votes(rng, truth, error_rates, votes_per_image)
    probs = classifier_probs(rng, truth, source)
    started = time.perf_counter()
    fit = crowdlab_fit(labels, probs)
    seconds = time.perf_counter() - started
    rho = spearmanr(fit["reviewer_quality"], 1 - np.asarray(error_rates)).statistic
    voted = [row[~np.isnan(row)] for row in labels]
    differ = np.array([len(set(v.tolist())) > 1 for v in voted])
    consensus_right = fit["consensus"] == truth
    decided = []
    for q in THRESHOLDS:
        # what image_vote applies: quality reaches q and the consensus is a label somebody voted for
        applies = differ & (fit["quality"] >= q) & np.array([c in v for c, v in zip(fit["consensus"], voted)])
        decided.append((q, applies.sum() / max(differ.sum(), 1),
                        consensus_right[applies].mean() if applies.any() else float("nan")))
    return {"rho": rho, "quality": fit["reviewer_quality"], "crowdlab": consensus_right.mean(),
            "majority": (majority_vote(labels, probs) == truth).mean(), "classifier": (probs.argmax(1) == truth).mean(),
            "differ": differ.mean(), "decided": decided, "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="images per seed")
    parser.add_argument("--error-rates", type=float, nargs="+", default=[0.05, 0.12, 0.2, 0.3, 0.4],
                        help="one per simulated reviewer")
    parser.add_argument("--votes", type=int, default=3, help="reviewers per image")
    parser.add_argument("--probs", choices=("logreg", "noisy-truth"), default="logreg")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    if not 2 <= args.votes <= len(args.error_rates):
        parser.error(f"--votes must be 2-{len(args.error_rates)} (the number of reviewers), not {args.votes}")
    print(f"{args.n} images, {len(args.error_rates)} reviewers (error rates {', '.join(map(str, args.error_rates))}),"
          f" {args.votes} votes per image, probabilities: {args.probs}")
    print("seed  spearman  estimated quality per reviewer        consensus acc: crowdlab  majority  classifier  "
          "rounds differing  CROWDLAB s")
    results = []
    for seed in args.seeds:
        r = run(seed, n=args.n, error_rates=args.error_rates, votes_per_image=args.votes, source=args.probs)
        results.append(r)
        print(f"{seed:>4}  {r['rho']:>8.3f}  {' '.join(f'{q:.3f}' for q in r['quality']):<36}  "
              f"{r['crowdlab']:>22.3f}  {r['majority']:>8.3f}  {r['classifier']:>10.3f}  {r['differ']:>16.1%}  "
              f"{r['seconds']:>10.2f}")
    mean = {k: float(np.mean([r[k] for r in results])) for k in ("rho", "crowdlab", "majority", "classifier")}
    print(f"mean  {mean['rho']:>8.3f}  {'':<36}  {mean['crowdlab']:>22.3f}  {mean['majority']:>8.3f}  "
          f"{mean['classifier']:>10.3f}")
    print("threshold  differing rounds applied  applied right   (mean over seeds)")
    for j, q in enumerate(THRESHOLDS):
        share = np.mean([r["decided"][j][1] for r in results])
        rights = [r["decided"][j][2] for r in results if not np.isnan(r["decided"][j][2])]
        right = f"{np.mean(rights):.3f}" if rights else "none applied"
        print(f"{q:>9}  {share:>24.1%}  {right:>13}")
    verdict = "meets" if mean["rho"] >= GOAL else "misses"
    print(f"Spearman {mean['rho']:.3f} {verdict} the goal of {GOAL} with {len(args.error_rates)} reviewers.")
    return mean


if __name__ == "__main__":
    main()
