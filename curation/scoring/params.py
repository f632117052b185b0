"""The score_ambiguity job's parameters: checked before anything is queued, by the command, the forms, the API and
job_enqueue alike (no torch: web processes import it). The worker's side is curation/scoring/handler.py."""
from django.conf import settings

from curation.jobs.errors import JobParamsError
from curation.models import GanModel, Image
from curation.selectors import dataset_queue_run, dataset_resolve
from training.labels import CLASSES, UnknownLabel, parse_label


def validate_score_params(params):
    dataset = dataset_resolve(name=params.get("dataset"))
    if not Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN).exclude(
            status=Image.Status.EXCLUDED).exists():
        raise JobParamsError(f"dataset {dataset.name!r} has no train-split images to score (scoring covers the "
                             f"train split, less excluded images)")
    try:
        threshold = float(params.get("threshold", 0.85))
    except (TypeError, ValueError):
        raise JobParamsError(f"threshold must be a number, not {params.get('threshold')!r}") from None
    if not 0 < threshold <= 1:
        raise JobParamsError(f"threshold must be in (0, 1], not {threshold}")
    per_class = {}
    for name, value in (params.get("class_thresholds") or {}).items():
        try:
            per_class[CLASSES[parse_label(name)]] = float(value)
        except (UnknownLabel, TypeError, ValueError) as exc:
            raise JobParamsError(f"class_thresholds: {name}={value!r}: {exc}") from None
    if not GanModel.objects.filter(dataset=dataset, status=GanModel.Status.SUCCEEDED).exists() and \
            dataset_queue_run(dataset_id=dataset.pk) is None:
        raise JobParamsError(f"nothing to score {dataset.name} with: train a CycleGAN pair (train_cyclegan) or a "
                             f"classifier with --folds first, or import your own model's predictions "
                             f"(import_predictions)")
    chunk_images = params.get("chunk_images")
    chunk_images = settings.SCORE_CHUNK_IMAGES if chunk_images is None else chunk_images
    if isinstance(chunk_images, bool) or not isinstance(chunk_images, int) or chunk_images < 1:
        raise JobParamsError(f"chunk_images must be a whole number of images, at least 1, not {chunk_images!r}")
    return {"dataset": dataset.name, "threshold": threshold, "class_thresholds": per_class,
            "chunk_images": chunk_images}
