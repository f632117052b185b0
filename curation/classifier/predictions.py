"""Reads a finished run's per-image predictions on the test split (written by the train_classifier job)."""
from pathlib import Path

import numpy as np
from django.conf import settings

PREDICTIONS_FILE = "test_predictions.npz"


def run_predictions_path(run):
    return Path(settings.MEDIA_ROOT) / "runs" / str(run.pk) / PREDICTIONS_FILE


def run_test_predictions(run):
    """{image id: (true label, predicted label, probabilities)} of `run` on the dataset's test split, or {} when
    the run wrote none (unfinished, or trained before predictions were kept). Generated images are never in it."""
    path = run_predictions_path(run)
    if not path.exists():
        return {}
    with np.load(path) as data:
        ids, labels, probs = data["ids"], data["labels"], data["probs"]
    return {int(i): (int(y), int(p.argmax()), p) for i, y, p in zip(ids, labels, probs)}


def run_image_ids_predicted(run, *, true_label=None, predicted=None):
    """Ids of the test images of `run` with that true label (its label when the run trained) and/or prediction."""
    return [i for i, (y, p, _) in run_test_predictions(run).items()
            if (true_label is None or y == true_label) and (predicted is None or p == predicted)]
