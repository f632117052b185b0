"""What the review card shows beside the image: the CycleGAN transformations behind its score, the classifier's
top probabilities and suggested label, reference faces of the current and suggested labels, the curators'
guidelines for both, and its label history. A fixed number of queries per card, whatever the dataset's size."""
import functools
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import F

from curation.classifier.features import NEIGHBOURS, nearest_neighbours
from curation.classifier.predictions import read_probabilities, run_predictions_path
from curation.gans.snapshots import generator_snapshot, pair_generators
from curation.models import GeneratedImage, Image, LabelChange, Run, TransformScore
from curation.selectors import dataset_queue_run
from training.labels import CLASSES

TOP_PROBABILITIES = 3
# Reference faces shown per class, and the candidates kept per class and run to pick them from (some of which may
# have been relabelled or excluded since the run trained).
REFERENCE_FACES = 5
REFERENCE_CANDIDATES = 40
# Statuses whose label a reference face may stand for: a reviewer confirmed it, or nobody has doubted it yet.
REFERENCE_STATUSES = (Image.Status.CONFIRMED, Image.Status.UNREVIEWED)


def review_card(*, image, run=None):
    """A dict for the card of `image`: transformations, probabilities, suggestion, references, guidelines, history.

    transformations: one per generator that scored the image (highest z first): the CycleGAN, its direction
    (G_A: source -> target, G_B: target -> source), target class, SSIM and z, and the generated image's URL where
    the generate job made one for that (CycleGAN, image, target); images are never generated in the web process.
    probabilities: the classifier's top classes for the image: from `run`'s test predictions when a run is given
    (browsing a run's confusion matrix), else from the dataset's latest finished run with out-of-fold
    probabilities (train images) or the latest finished run's test predictions (test images); None without one.
    suggestion: the classifier's suggested label (scoring's, else the top probability shown) as {"code", "name",
    "is_current"}, or None. references: for the current label and the suggestion, the most typical train faces
    (reference_faces). guidelines: the dataset's guideline texts for those labels. neighbours: the train images
    nearest to this one's out-of-fold embedding (card_neighbours). Seven queries at most."""
    oof_run = _oof_run(image.dataset_id)
    probabilities = _probabilities(image, run, oof_run)
    suggestion = _suggestion(image, probabilities)
    labels = [image.label] + ([suggestion["code"]] if suggestion and not suggestion["is_current"] else [])
    guidelines = image.dataset.guidelines or {}
    return {
        "transformations": review_card_transformations(image),
        "probabilities": probabilities,
        "suggestion": suggestion,
        "references": reference_faces(run=oof_run, labels=labels, leave_out=image.pk),
        "guidelines": [{"name": CLASSES[code], "text": guidelines[CLASSES[code]]}
                       for code in labels if guidelines.get(CLASSES[code])],
        "history": list(LabelChange.objects.filter(image_id=image.pk).select_related("user").order_by("id")),
        "neighbours": card_neighbours(run=oof_run, image=image),
    }


def card_neighbours(*, run, image, k=NEIGHBOURS):
    """[{"image": Image, "distance": cosine distance}] of the k train images whose out-of-fold embeddings under `run`
    are nearest to `image`'s (curation.classifier.features: the memory-mapped file, no query), nearest first, with
    their labels as they are now; [] without embeddings or for an image that has none (val, test). One query."""
    if run is None:
        return []
    found = nearest_neighbours(run, image.pk, k=k)
    if not found:
        return []
    rows = Image.objects.in_bulk([pk for pk, _ in found])
    return [{"image": rows[pk], "distance": d} for pk, d in found if pk in rows]


def _oof_run(dataset_id):
    """The model that feeds the dataset's queue (its latest finished run with out-of-fold probabilities, or the
    imported predictions a curator picked), or None. One query."""
    return dataset_queue_run(dataset_id=dataset_id)


def _suggestion(image, probabilities):
    code = image.classifier_suggested_label
    if code is None and probabilities:
        code = probabilities["top"][0][2]
    if code is None:
        return None
    return {"code": code, "name": CLASSES[code], "is_current": code == image.label}


def reference_faces(*, run, labels, leave_out=None, per_class=REFERENCE_FACES):
    """The most typical train faces of each of `labels`: [{"code", "name", "images": [Image]}], in that order.

    Typical: the highest out-of-fold probability of its own label under `run` (a run with out-of-fold
    probabilities, or None: no references), among the train images whose label is still that one and that are
    confirmed or unreviewed (a face someone relabelled or excluded stands for nothing). The ranking is computed once
    per run's file (reference_candidates); each card then costs one query, whatever the dataset's size."""
    if run is None or not labels:
        return []
    ranked = reference_candidates(Path(settings.MEDIA_ROOT) / run.oof_file)
    if ranked is None:
        return []
    wanted = {code: ranked.get(code, ()) for code in labels}
    ids = [pk for pks in wanted.values() for pk in pks if pk != leave_out]
    rows = {(img.pk, img.label): img for img in Image.objects.filter(
        pk__in=ids, split=Image.Split.TRAIN, status__in=REFERENCE_STATUSES, label__in=list(wanted))
        .only("id", "file", "label", "path")} if ids else {}
    out = []
    for code, pks in wanted.items():
        faces = [rows[pk, code] for pk in pks if (pk, code) in rows and pk != leave_out][:per_class]
        out.append({"code": code, "name": CLASSES[code], "images": faces})
    return out


def reference_candidates(path):
    """{label code: image ids} of an out-of-fold probability file: per label, the ids of the images that had it
    when the run trained, by their probability of it, highest first (REFERENCE_CANDIDATES of them). Cached per file
    version; None when the file is missing."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None
    return _ranked(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _ranked(path, mtime_ns, size):
    read = read_probabilities(path)
    if read is None:
        return None
    ids, labels, probs = read
    out = {}
    for code in range(probs.shape[1]):
        own = np.flatnonzero(labels == code)
        order = own[np.argsort(-probs[own, code], kind="stable")][:REFERENCE_CANDIDATES]
        out[code] = [int(i) for i in ids[order]]
    return out


def review_card_transformations(image):
    """The transformation rows of review_card (also the API's image detail): first those of the generators scoring
    uses now (each pair's CycleGAN at its scoring epoch: curation.gans.snapshots.pair_generators), then any an
    earlier scoring left, each row's `in_use` saying which. Three queries at most."""
    scores = list(TransformScore.objects.filter(image_id=image.pk).select_related("gan")
                  .order_by(F("z").desc(nulls_last=True), "-ssim"))
    files, in_use = {}, set()
    if scores:
        generated = GeneratedImage.objects.filter(source_image_id=image.pk).values_list("gan_id", "target_label", "file")
        files = {(gan_id, target): path for gan_id, target, path in generated}
        in_use = {(gan.pk, generator_snapshot(gan)[1]) for gan in pair_generators(image.dataset_id)}
        scores.sort(key=lambda score: (score.gan_id, score.epoch) not in in_use)  # stable: z order within each
    rows = []
    for score in scores:
        path = files.get((score.gan_id, score.target_label))
        forward = score.direction == "AB"
        source = score.gan.source_label if forward else score.gan.target_label
        rows.append({
            "gan_id": score.gan_id, "generator": "G_A" if forward else "G_B",
            "source": CLASSES[source], "target": CLASSES[score.target_label], "target_label": score.target_label,
            "epoch": score.epoch, "in_use": (score.gan_id, score.epoch) in in_use,
            "ssim": score.ssim, "ssim_into": score.ssim_into, "z": score.z,
            "file_url": settings.MEDIA_URL + path if path else None,
        })
    return rows


def _probabilities(image, run, oof_run):
    if run is None:
        if image.split == Image.Split.TEST:
            run = (Run.objects.filter(dataset_id=image.dataset_id, status=Run.Status.SUCCEEDED,
                                      source=Run.Source.TRAINED).order_by("-id").first())
        elif oof_run is not None:
            return _top(oof_run, Path(settings.MEDIA_ROOT) / oof_run.oof_file, image.pk, "out-of-fold")
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
    return {"run": run.pk, "source": source, "top": [(CLASSES[j], float(row[j]), int(j)) for j in top]}
