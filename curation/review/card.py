"""What the review card shows beside the image: the CycleGAN transformations behind its score, the classifier's
top probabilities, and its label history. A fixed number of queries per card, whatever the dataset's size."""
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import F

from curation.classifier.predictions import read_probabilities, run_predictions_path
from curation.models import GeneratedImage, Image, LabelChange, Run, TransformScore
from training.labels import CLASSES

TOP_PROBABILITIES = 3


def review_card(*, image, run=None):
    """A dict for the card of `image`: transformations, probabilities, history.

    transformations: one per generator that scored the image (highest z first): the CycleGAN, its direction
    (G_A: source -> target, G_B: target -> source), target class, SSIM and z, and the generated image's URL where
    the generate job made one for that (CycleGAN, image, target); images are never generated in the web process.
    probabilities: the classifier's top classes for the image: from `run`'s test predictions when a run is given
    (browsing a run's confusion matrix), else from the dataset's latest finished run with out-of-fold
    probabilities (train images) or the latest finished run's test predictions (test images); None without one.
    Four queries."""
    return {
        "transformations": review_card_transformations(image),
        "probabilities": _probabilities(image, run),
        "history": list(LabelChange.objects.filter(image_id=image.pk).select_related("user").order_by("id")),
    }


def review_card_transformations(image):
    """The transformation rows of review_card (also the API's image detail). Two queries at most."""
    scores = list(TransformScore.objects.filter(image_id=image.pk).select_related("gan")
                  .order_by(F("z").desc(nulls_last=True), "-ssim"))
    files = {}
    if scores:
        generated = GeneratedImage.objects.filter(source_image_id=image.pk).values_list("gan_id", "target_label", "file")
        files = {(gan_id, target): path for gan_id, target, path in generated}
    rows = []
    for score in scores:
        path = files.get((score.gan_id, score.target_label))
        forward = score.direction == "AB"
        source = score.gan.source_label if forward else score.gan.target_label
        rows.append({
            "gan_id": score.gan_id, "generator": "G_A" if forward else "G_B",
            "source": CLASSES[source], "target": CLASSES[score.target_label], "target_label": score.target_label,
            "epoch": score.epoch,
            "ssim": score.ssim, "ssim_into": score.ssim_into, "z": score.z,
            "file_url": settings.MEDIA_URL + path if path else None,
        })
    return rows


def _probabilities(image, run):
    if run is None:
        runs = Run.objects.filter(dataset_id=image.dataset_id, status=Run.Status.SUCCEEDED).order_by("-id")
        if image.split == Image.Split.TEST:
            run = runs.first()
        else:
            run = runs.exclude(oof_file="").first()
            if run is not None:
                return _top(run, Path(settings.MEDIA_ROOT) / run.oof_file, image.pk, "out-of-fold")
    if run is None:
        return None
    return _top(run, run_predictions_path(run), image.pk, "test predictions")


def _top(run, path, image_id, source):
    read = read_probabilities(path)
    if read is None:
        return None
    ids, _, probs = read
    at = int(np.searchsorted(ids, image_id))
    if at >= len(ids) or ids[at] != image_id:
        return None
    row = probs[at]
    top = np.argsort(-row)[:TOP_PROBABILITIES]
    return {"run": run.pk, "source": source, "top": [(CLASSES[j], float(row[j])) for j in top]}
