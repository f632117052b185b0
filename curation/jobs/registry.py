"""The job kinds: a plain dict from kind name to its handler, queue and parameter validator.

A kind's validator (its `params` module: defaults, validation, the preview; Django and config dataclasses only) is
imported here, since the commands, the forms, the API and job_enqueue all check parameters with it. Its handler (the
worker's code, which may import torch at the top) is only named here, by dotted path: the job runner
(curation/jobs/runner.py) imports it when a job of the kind runs, so a web process, which imports this registry,
imports no handler and no torch.
"""
from dataclasses import dataclass
from typing import Callable

from curation.classifier.generate_retrain_params import validate_generate_retrain_params
from curation.classifier.params import validate_train_params
from curation.classifier.pretrain_params import validate_pretrain_params
from curation.classifier.rescore_params import validate_rescore_params
from curation.duplicates.params import validate_duplicates_params
from curation.gans.generate_params import validate_generate_params
from curation.gans.params import validate_cyclegan_params
from curation.importers.params import validate_import_params
from curation.importers.predictions_params import validate_import_predictions_params
from curation.jobs.errors import JobParamsError
from curation.maps.params import validate_map_params
from curation.scoring.chunk_params import validate_chunk_params
from curation.scoring.params import validate_score_params


@dataclass(frozen=True)
class JobKind:
    # "module.function": the worker's code, imported by the runner only, when a job of this kind runs.
    handler: str
    validate: Callable
    queue: str = "cpu"  # "gpu": training, generation and scoring (GPU workers; the embedded worker takes both)
    # The kind of job that enqueues jobs of this kind as its parts (Job.parent); such jobs are not started by hand.
    part_of: str | None = None
    # Kinds of job that may also run a job of this kind as one of their parts, though it starts on its own too.
    also_part_of: tuple = ()


JOB_KINDS = {
    "import_dataset": JobKind(handler="curation.importers.handler.import_dataset_job",
                              validate=validate_import_params, queue="cpu"),
    "train_classifier": JobKind(handler="curation.classifier.handler.train_classifier_job",
                                validate=validate_train_params, queue="gpu",
                                also_part_of=("rescore", "generate_retrain")),
    # Self-supervised pretraining of the classifier's backbone on the dataset's own images (--init ssl:ID).
    "pretrain_ssl": JobKind(handler="curation.classifier.pretrain_handler.pretrain_ssl_job",
                            validate=validate_pretrain_params, queue="gpu"),
    "train_cyclegan": JobKind(handler="curation.gans.handler.train_cyclegan_job",
                              validate=validate_cyclegan_params, queue="gpu"),
    "generate_images": JobKind(handler="curation.gans.generate_handler.generate_images_job",
                               validate=validate_generate_params, queue="gpu", also_part_of=("generate_retrain",)),
    "score_ambiguity": JobKind(handler="curation.scoring.handler.score_ambiguity_job",
                               validate=validate_score_params, queue="gpu", also_part_of=("rescore",)),
    # A part of a score_ambiguity job (Job.parent), enqueued by it through its JobContext; not started by hand.
    "score_chunk": JobKind(handler="curation.scoring.chunk_handler.score_chunk_job",
                           validate=validate_chunk_params, queue="gpu", part_of="score_ambiguity"),
    # Review rounds: refit the out-of-fold models on the reviewed labels, then rescore (both as its children).
    "rescore": JobKind(handler="curation.classifier.rescore_handler.rescore_job",
                       validate=validate_rescore_params, queue="gpu"),
    # The retrain form's augmented retrain of a dataset with no generated images: generate, then retrain (children).
    "generate_retrain": JobKind(handler="curation.classifier.generate_retrain_handler.generate_retrain_job",
                                validate=validate_generate_retrain_params, queue="gpu"),
    "find_duplicates": JobKind(handler="curation.duplicates.handler.find_duplicates_job",
                               validate=validate_duplicates_params, queue="cpu"),
    # A user's own model's predictions (and embeddings) from a file, stored as a run the queue may be fed by.
    "import_predictions": JobKind(handler="curation.importers.predictions_handler.import_predictions_job",
                                  validate=validate_import_predictions_params, queue="cpu"),
    # The dataset map: a 2-D projection of the queue model's embeddings (curation/maps/), reused until they change.
    "map_dataset": JobKind(handler="curation.maps.handler.map_dataset_job",
                           validate=validate_map_params, queue="cpu"),
}


def get_kind(kind):
    try:
        return JOB_KINDS[kind]
    except KeyError:
        raise JobParamsError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(JOB_KINDS))}") from None
