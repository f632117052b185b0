"""Reads a run's per-image probabilities: its predictions on the test split (test_predictions.npz, written by the
train_classifier job) and its out-of-fold ones on the train split (oof.npz). Both files hold `ids`, `labels` and
`probs`; a web process reads each file version once (cached)."""
import functools
from pathlib import Path

import numpy as np
from django.conf import settings

PREDICTIONS_FILE = "test_predictions.npz"


def run_predictions_path(run):
    return Path(settings.MEDIA_ROOT) / "runs" / str(run.pk) / PREDICTIONS_FILE


def read_probabilities(path):
    """(image ids sorted, their labels when the run trained, probability rows normalised to sum 1) of such a file,
    or None when it is missing (an unfinished run, or one trained before predictions were kept)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read(path, mtime_ns, size):
    """Cached per file version (path, modification time, size)."""
    with np.load(path) as data:
        ids = np.asarray(data["ids"], dtype=np.int64)
        labels = np.asarray(data["labels"], dtype=np.int64)
        probs = np.asarray(data["probs"], dtype=np.float32)
    order = np.argsort(ids, kind="stable")
    probs = probs[order]
    return ids[order], labels[order], probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)


def run_image_ids_predicted(run, *, true_label=None, predicted=None):
    """Ids of the test images of `run` with that true label (its label when the run trained) and/or prediction;
    [] when the run kept no predictions. Generated images are never among them."""
    read = read_probabilities(run_predictions_path(run))
    if read is None:
        return []
    ids, labels, probs = read
    keep = np.ones(len(ids), dtype=bool)
    if true_label is not None:
        keep &= labels == true_label
    if predicted is not None:
        keep &= probs.argmax(1) == predicted
    return ids[keep].tolist()
