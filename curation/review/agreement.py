"""Agreement between reviewers on datasets that need several reviews per image (Dataset.reviews_required = K).

Fleiss' kappa (Fleiss 1971), overall and per category, over the rounds of votes that reached exactly K votes. The
categories are the 8 classes plus "excluded". Fleiss' rather than Cohen's, also for K = 2: the reviewers of one
image are whoever the queue gave it to, not two fixed raters, which is the case Fleiss' statistic is made for.
"""
from collections import Counter, defaultdict

import numpy as np

from curation.models import Image, ReviewVote
from training.labels import CLASSES

EXCLUDED = "excluded"
CATEGORIES = (*CLASSES, EXCLUDED)


def fleiss_kappa(counts):
    """counts: (N items, C categories), every row summing to the same n >= 2 raters.

    Returns (kappa, per-category kappa, observed agreement P, chance agreement Pe, category shares p). A kappa is
    None where it is undefined: no variation (chance agreement 1), or a category nobody (or everybody) chose.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_items, _ = counts.shape
    n = counts[0].sum()
    if n < 2 or not np.all(counts.sum(1) == n):
        raise ValueError("every item needs the same number of ratings, at least 2")
    shares = counts.sum(0) / (n_items * n)  # p_j
    observed = ((counts * counts).sum(1) - n) / (n * (n - 1))  # P_i
    p_bar, p_e = observed.mean(), (shares ** 2).sum()
    kappa = None if np.isclose(p_e, 1.0) else float((p_bar - p_e) / (1 - p_e))
    per_category = []
    for j, p in enumerate(shares):
        q = 1 - p
        if p * q == 0:
            per_category.append(None)
            continue
        disagree = (counts[:, j] * (n - counts[:, j])).sum()
        per_category.append(float(1 - disagree / (n_items * n * (n - 1) * p * q)))
    return kappa, per_category, float(p_bar), float(p_e), shares.tolist()


def dataset_agreement(dataset):
    """How far the reviewers of `dataset` agree: a dict with
    reviews_required (K), items (rounds with exactly K votes), unanimous (of those), disputed_open (images awaiting
    a curator now), kappa (Fleiss, overall), observed and chance agreement, and per_class: {category name:
    {"kappa", "share" (of all votes), "votes"}} for the 8 classes and "excluded". kappa values are None where
    undefined (too few items, or no variation). Two queries; the votes are read once."""
    k = dataset.reviews_required
    rounds = defaultdict(list)
    votes = (ReviewVote.objects.filter(image__dataset=dataset, withdrawn_at__isnull=True)
             .values_list("image_id", "version", "action", "label"))
    for image_id, version, action, label in votes.iterator(chunk_size=5000):
        rounds[image_id, version].append(EXCLUDED if action == ReviewVote.Action.EXCLUDE else CLASSES[label])
    complete = [choices for choices in rounds.values() if len(choices) == k]
    result = {
        "reviews_required": k, "items": len(complete),
        "unanimous": sum(len(set(choices)) == 1 for choices in complete),
        "disputed_open": Image.objects.filter(dataset=dataset, disputed=True).count(),
        "kappa": None, "observed_agreement": None, "chance_agreement": None,
        "per_class": {name: {"kappa": None, "share": 0.0, "votes": 0} for name in CATEGORIES},
    }
    if k < 2 or not complete:
        return result
    counts = np.zeros((len(complete), len(CATEGORIES)))
    index = {name: j for j, name in enumerate(CATEGORIES)}
    for i, choices in enumerate(complete):
        for name, n in Counter(choices).items():
            counts[i, index[name]] = n
    kappa, per_category, p_bar, p_e, shares = fleiss_kappa(counts)
    result.update(kappa=kappa, observed_agreement=p_bar, chance_agreement=p_e)
    for j, name in enumerate(CATEGORIES):
        result["per_class"][name] = {"kappa": per_category[j], "share": shares[j], "votes": int(counts[:, j].sum())}
    return result
