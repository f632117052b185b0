"""Consensus and reviewer quality with CROWDLAB (cleanlab.multiannotator), for datasets that need several reviews
per image (Dataset.reviews_required > 1).

CROWDLAB (Goh, Tkachenko & Mueller 2022) weighs each reviewer's votes and the classifier's probabilities by how far
each agrees with the others, and gives per round of votes (an image at one version) a consensus label, that label's
quality (0-1, low: doubtful) and the share of voters who chose it; per reviewer an estimated quality (0-1) and the
number of votes counted. The classifier's probabilities are those the card shows: out-of-fold ones (the fold model
that did not see the image) for train images, from the dataset's latest finished run with out-of-fold
probabilities, and the latest finished run's test predictions for test images. Images with neither (validation
images, or no run yet) are left out and counted in `left_out`. Exclude votes are not a class the classifier knows:
they are left out too (counted in `exclude_votes`), and a round with an exclude vote is never decided by CROWDLAB.

Where a curator set Dataset.consensus_threshold, a round whose K votes differ is decided by CROWDLAB instead of going
to the disputes page when its consensus quality is at least the threshold and the consensus label is one the
reviewers voted for (curation.review.votes.image_vote). No threshold: unanimity, as before.

dataset_crowdlab is cached per (dataset, latest vote id, votes and withdrawn votes, runs and their probability
files' versions): a page costs a fixed number of
queries whatever the number of images (three on a cache hit, four on a miss).
"""
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from curation.classifier.predictions import read_probabilities, run_predictions_path
from curation.models import Dataset, ReviewVote, Run
from curation.selectors import dataset_queue_run
from training.labels import CLASSES


@dataclass
class Crowdlab:
    """dataset_crowdlab's answer. rounds: {(image id, version): {"consensus" (label code), "quality",
    "agreement", "votes" (label votes counted)}}; reviewers: [{"user_id", "username", "quality", "votes",
    "agreement_with_consensus"}], lowest quality first; left_out: images with label votes but no classifier
    probabilities; exclude_votes: exclude votes not counted; runs: (out-of-fold run id, test-predictions run id);
    reason: why nothing was computed (None when it was)."""
    rounds: dict = field(default_factory=dict)
    reviewers: list = field(default_factory=list)
    left_out: int = 0
    exclude_votes: int = 0
    runs: tuple = (None, None)
    reason: str | None = None


_CACHE_SIZE = 8
_cache = OrderedDict()
_lock = threading.Lock()


def consensus_threshold_check(value):
    """None (off: unanimity) or the threshold as a float in [0, 1]; ValueError naming a bad value."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
        return None
    try:
        q = float(str(value).strip())
    except ValueError:
        raise ValueError(f"consensus threshold must be a number 0-1 (a CROWDLAB consensus quality) or off, "
                         f"not {value!r}") from None
    if not np.isfinite(q) or not 0.0 <= q <= 1.0:
        raise ValueError(f"consensus threshold must be 0-1 (or off), not {value}")
    return q


def dataset_consensus_threshold_set(*, dataset_id, consensus_threshold):
    """Set (a quality 0-1) or clear (None, "off": unanimity) the CROWDLAB consensus threshold of a dataset; returns
    the value set. Raises ValueError (named) or Dataset.DoesNotExist."""
    value = consensus_threshold_check(consensus_threshold)
    if not Dataset.objects.filter(pk=dataset_id).update(consensus_threshold=value):
        raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
    return value


def _runs(dataset_id):
    """(the model feeding the queue: latest finished run with out-of-fold probabilities or the imported predictions
    a curator picked, latest finished product run) of the dataset. Two queries."""
    done = Run.objects.filter(dataset_id=dataset_id, status=Run.Status.SUCCEEDED, source=Run.Source.TRAINED)
    return dataset_queue_run(dataset_id=dataset_id), done.order_by("-id").only("id").first()


def _lookup(read, image_ids):
    """Rows of a probability file's matrix for `image_ids` (np.int64) and a mask of those found."""
    if read is None or not len(image_ids):
        return np.zeros(len(image_ids), dtype=bool), None
    ids, _, probs = read
    at = np.clip(np.searchsorted(ids, image_ids), 0, max(len(ids) - 1, 0))
    found = ids[at] == image_ids if len(ids) else np.zeros(len(image_ids), dtype=bool)
    return found, probs[at]


def _file_version(path):
    """(path, modification time, size) of a probability file, or None when there is none."""
    try:
        stat = path.stat()
    except (OSError, AttributeError):
        return None
    return str(path), stat.st_mtime_ns, stat.st_size


def dataset_crowdlab(dataset):
    """CROWDLAB on the dataset's counted votes (see the module's docstring): a Crowdlab. Cached per (dataset, latest
    vote id, numbers of votes and withdrawn votes, runs, probability file versions); three queries on a hit, four
    on a miss."""
    stats = ReviewVote.objects.filter(image__dataset_id=dataset.pk).aggregate(
        last=Max("id"), votes=Count("id"), withdrawn=Count("withdrawn_at"))
    oof_run, test_run = _runs(dataset.pk)
    files = ((Path(settings.MEDIA_ROOT) / oof_run.oof_file) if oof_run else None,
             run_predictions_path(test_run) if test_run else None)
    key = (dataset.pk, stats["last"], stats["votes"], stats["withdrawn"], oof_run and oof_run.pk,
           test_run and test_run.pk, *(_file_version(f) for f in files))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = _compute(dataset, oof_run, test_run)
    with _lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _compute(dataset, oof_run, test_run):
    runs = (oof_run and oof_run.pk, test_run and test_run.pk)
    rows = list(ReviewVote.objects.filter(image__dataset_id=dataset.pk, withdrawn_at__isnull=True)
                .values_list("image_id", "version", "user_id", "user__username", "action", "label",
                             "image__split").order_by("id"))
    exclude_votes = sum(action == ReviewVote.Action.EXCLUDE for _, _, _, _, action, _, _ in rows)
    votes = [r for r in rows if r[4] != ReviewVote.Action.EXCLUDE and r[5] is not None]
    if not votes:
        return Crowdlab(exclude_votes=exclude_votes, runs=runs, reason="no label votes yet")
    image_ids = np.array(sorted({r[0] for r in votes}), dtype=np.int64)
    splits = {r[0]: r[6] for r in votes}
    oof = read_probabilities(Path(settings.MEDIA_ROOT) / oof_run.oof_file) if oof_run else None
    test = read_probabilities(run_predictions_path(test_run)) if test_run else None
    in_oof, oof_rows = _lookup(oof, image_ids)
    in_test, test_rows = _lookup(test, image_ids)
    is_test = np.array([splits[i] == "test" for i in image_ids.tolist()], dtype=bool)
    probs = {}
    for n, image_id in enumerate(image_ids.tolist()):
        if is_test[n] and in_test[n]:
            probs[image_id] = test_rows[n]
        elif not is_test[n] and in_oof[n]:
            probs[image_id] = oof_rows[n]
    left_out = len(image_ids) - len(probs)
    votes = [r for r in votes if r[0] in probs]
    rounds = sorted({(r[0], r[1]) for r in votes})
    users = sorted({r[2] for r in votes})
    names = {r[2]: r[3] for r in votes}
    if len(users) < 2 or not rounds:
        return Crowdlab(left_out=left_out, exclude_votes=exclude_votes, runs=runs,
                        reason="needs label votes from at least two reviewers on images with classifier "
                               "probabilities")
    row_of = {r: n for n, r in enumerate(rounds)}
    col_of = {u: m for m, u in enumerate(users)}
    labels = np.full((len(rounds), len(users)), np.nan)
    for image_id, version, user_id, _, _, label, _ in votes:
        labels[row_of[image_id, version], col_of[user_id]] = label
    if (np.sum(~np.isnan(labels), axis=1) < 2).all():
        return Crowdlab(left_out=left_out, exclude_votes=exclude_votes, runs=runs,
                        reason="no image has two label votes with classifier probabilities yet")
    pred_probs = np.stack([probs[image_id] for image_id, _ in rounds]).astype(np.float64)
    pred_probs = pred_probs / pred_probs.sum(1, keepdims=True)
    result = crowdlab_fit(labels, pred_probs)
    out = Crowdlab(left_out=left_out, exclude_votes=exclude_votes, runs=runs)
    for n, r in enumerate(rounds):
        out.rounds[r] = {"consensus": int(result["consensus"][n]), "consensus_name": CLASSES[result["consensus"][n]],
                         "quality": float(result["quality"][n]), "agreement": float(result["agreement"][n]),
                         "votes": int(result["num_votes"][n])}
    out.reviewers = sorted(({"user_id": u, "username": names[u], "quality": float(result["reviewer_quality"][m]),
                             "votes": int(result["reviewer_votes"][m]),
                             "agreement_with_consensus": float(result["reviewer_agreement"][m])}
                            for m, u in enumerate(users)), key=lambda r: (r["quality"], r["username"]))
    return out


def crowdlab_fit(labels, pred_probs):
    """CROWDLAB on a (rounds, reviewers) matrix of label codes (NaN: no vote) and (rounds, classes) probabilities.

    Returns numpy arrays: consensus (label per round), quality (its consensus quality), agreement (share of the
    round's voters who chose it), num_votes; reviewer_quality, reviewer_votes, reviewer_agreement (with the
    consensus) per column. The benchmark calls this too, so it measures what the product computes."""
    import pandas as pd
    from cleanlab.multiannotator import get_label_quality_multiannotator

    frame = pd.DataFrame(labels, columns=list(range(labels.shape[1])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "annotators do not agree on any example", class coverage notes
        info = get_label_quality_multiannotator(frame, pred_probs, verbose=False, return_detailed_quality=False)
    quality, stats = info["label_quality"], info["annotator_stats"].reindex(list(range(labels.shape[1])))
    return {
        "consensus": quality["consensus_label"].to_numpy().astype(int),
        "quality": quality["consensus_quality_score"].to_numpy(dtype=float),
        "agreement": quality["annotator_agreement"].to_numpy(dtype=float),
        "num_votes": quality["num_annotations"].to_numpy().astype(int),
        "reviewer_quality": stats["annotator_quality"].to_numpy(dtype=float),
        "reviewer_votes": stats["num_examples_labeled"].to_numpy().astype(int),
        "reviewer_agreement": stats["agreement_with_consensus"].to_numpy(dtype=float),
    }


def round_decision(dataset, image, choices):
    """What CROWDLAB decides for a round whose votes differ, under the dataset's threshold: (label code, consensus
    dict) to apply, or (None, consensus dict or None) to leave the image disputed. `choices`: the set of the round's
    (kind, label) choices (curation.review.votes). Never decides a round with an exclude vote, one without
    classifier probabilities, or one whose consensus label no reviewer chose."""
    threshold = dataset.consensus_threshold
    if threshold is None or any(kind == ReviewVote.Action.EXCLUDE for kind, _ in choices):
        return None, None
    consensus = dataset_crowdlab(dataset).rounds.get((image.pk, image.version))
    if consensus is None or consensus["quality"] < threshold:
        return None, consensus
    if consensus["consensus"] not in {label for _, label in choices}:
        return None, consensus
    return consensus["consensus"], consensus
