"""The job kinds: a plain dict from kind name to its handler, queue and parameter validator.

Handlers take a JobContext and return a JSON-serialisable result. Handlers that need torch import it inside the
function, so that web processes, which import this registry, never import torch.
"""
from dataclasses import dataclass
from typing import Callable

from curation.classifier.augment_chain import generate_retrain_job, validate_generate_retrain_params
from curation.classifier.job import train_classifier_job, validate_train_params
from curation.classifier.pretrain import pretrain_ssl_job, validate_pretrain_params
from curation.classifier.rescore import rescore_job, validate_rescore_params
from curation.duplicates.job import find_duplicates_job, validate_duplicates_params
from curation.gans.generate import generate_images_job, validate_generate_params
from curation.gans.job import train_cyclegan_job, validate_cyclegan_params
from curation.importers.job import import_dataset_job, validate_import_params
from curation.importers.predictions_job import import_predictions_job, validate_import_predictions_params
from curation.jobs.errors import JobParamsError
from curation.maps.job import map_dataset_job, validate_map_params
from curation.scoring.chunks import score_chunk_job, validate_chunk_params
from curation.scoring.job import score_ambiguity_job, validate_score_params


@dataclass(frozen=True)
class JobKind:
    handler: Callable
    validate: Callable
    queue: str = "cpu"  # "gpu": training, generation and scoring (GPU workers; the embedded worker takes both)
    # The kind of job that enqueues jobs of this kind as its parts (Job.parent); such jobs are not started by hand.
    part_of: str | None = None
    # Kinds of job that may also run a job of this kind as one of their parts, though it starts on its own too.
    also_part_of: tuple = ()


JOB_KINDS = {
    "import_dataset": JobKind(handler=import_dataset_job, validate=validate_import_params, queue="cpu"),
    "train_classifier": JobKind(handler=train_classifier_job, validate=validate_train_params, queue="gpu",
                                also_part_of=("rescore", "generate_retrain")),
    # Self-supervised pretraining of the classifier's backbone on the dataset's own images (--init ssl:ID).
    "pretrain_ssl": JobKind(handler=pretrain_ssl_job, validate=validate_pretrain_params, queue="gpu"),
    "train_cyclegan": JobKind(handler=train_cyclegan_job, validate=validate_cyclegan_params, queue="gpu"),
    "generate_images": JobKind(handler=generate_images_job, validate=validate_generate_params, queue="gpu",
                               also_part_of=("generate_retrain",)),
    "score_ambiguity": JobKind(handler=score_ambiguity_job, validate=validate_score_params, queue="gpu",
                               also_part_of=("rescore",)),
    # A part of a score_ambiguity job (Job.parent), enqueued by it through its JobContext; not started by hand.
    "score_chunk": JobKind(handler=score_chunk_job, validate=validate_chunk_params, queue="gpu",
                           part_of="score_ambiguity"),
    # Review rounds: refit the out-of-fold models on the reviewed labels, then rescore (both as its children).
    "rescore": JobKind(handler=rescore_job, validate=validate_rescore_params, queue="gpu"),
    # The retrain form's augmented retrain of a dataset with no generated images: generate, then retrain (children).
    "generate_retrain": JobKind(handler=generate_retrain_job, validate=validate_generate_retrain_params,
                                queue="gpu"),
    "find_duplicates": JobKind(handler=find_duplicates_job, validate=validate_duplicates_params, queue="cpu"),
    # A user's own model's predictions (and embeddings) from a file, stored as a run the queue may be fed by.
    "import_predictions": JobKind(handler=import_predictions_job, validate=validate_import_predictions_params,
                                  queue="cpu"),
    # The dataset map: a 2-D projection of the queue model's embeddings (curation/maps/), reused until they change.
    "map_dataset": JobKind(handler=map_dataset_job, validate=validate_map_params, queue="cpu"),
}


def get_kind(kind):
    try:
        return JOB_KINDS[kind]
    except KeyError:
        raise JobParamsError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(JOB_KINDS))}") from None
