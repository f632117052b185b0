"""Show or set a dataset's review settings: how many reviewers decide each image (Dataset.reviews_required)."""
from django.core.management.base import CommandError

from curation.classifier.rescore_params import dataset_rescore_every_set
from curation.management.migrated import DatabaseCommand
from curation.models import MAX_REVIEWS_REQUIRED
from curation.review.audit import audit_share_check, dataset_audit_share_set
from curation.review.crowdlab import dataset_consensus_threshold_set
from curation.review.dataset_settings import dataset_queue_run_set, dataset_reviews_required_set
from curation.selectors import DatasetNotFound, dataset_resolve


class Command(DatabaseCommand):
    help = ("Show or set how many reviewers must decide each image of a dataset. 1 (the default): the first "
            "decision applies. K > 1: K votes; unanimous ones apply, others go to the curators' disputes page.")

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument("--reviews-required", type=int, metavar="K",
                            help=f"reviewers per image, 1-{MAX_REVIEWS_REQUIRED}")
        parser.add_argument("--rescore-every", metavar="N",
                            help="review rounds: rescore the queue after every N decisions (off: never by itself)")
        parser.add_argument("--consensus-threshold", metavar="Q",
                            help="with several reviewers: differing votes apply CROWDLAB's consensus when its "
                                 "quality is at least Q (0-1); off: only unanimous votes apply")
        parser.add_argument("--audit-share", metavar="S",
                            help="the random audit: this share (0-0.5) of the cards served are random draws, "
                                 "stratified by given label; 0 turns it off")
        parser.add_argument("--queue-model", metavar="RUN",
                            help="the model that feeds the queue from the next scoring: an imported model's run id "
                                 "(import_predictions), or latest: the latest product run with out-of-fold "
                                 "probabilities (the default)")

    def handle(self, *args, dataset, reviews_required, rescore_every=None, consensus_threshold=None,
               audit_share=None, queue_model=None, **options):
        try:
            ds = dataset_resolve(name=dataset)
        except DatasetNotFound as exc:
            raise CommandError(str(exc)) from None
        # The services the dataset page's forms call: the same values refused with the same words.
        settings = (("--reviews-required", reviews_required,
                     lambda v: dataset_reviews_required_set(dataset_id=ds.pk, reviews_required=v)),
                    ("--rescore-every", rescore_every,
                     lambda v: dataset_rescore_every_set(dataset_id=ds.pk, rescore_every=v)),
                    ("--consensus-threshold", consensus_threshold,
                     lambda v: dataset_consensus_threshold_set(dataset_id=ds.pk, consensus_threshold=v)),
                    ("--audit-share", audit_share,
                     lambda v: dataset_audit_share_set(dataset_id=ds.pk, audit_share=v)),
                    ("--queue-model", queue_model,
                     lambda v: dataset_queue_run_set(dataset_id=ds.pk, queue_run=v)))
        if audit_share is not None:  # judged before the others are stored: a bad share changes nothing
            try:
                audit_share_check(audit_share)
            except ValueError as exc:
                raise CommandError(f"--audit-share: {exc}") from None
        for option, value, setter in settings:
            if value is None:
                continue
            try:
                setter(value)
            except ValueError as exc:
                raise CommandError(f"{option}: {exc}") from None
        ds.refresh_from_db()
        self.stdout.write(f"{ds.name}: {ds.reviews_required} review{'s' if ds.reviews_required != 1 else ''} "
                          f"per image; " + (f"rescored after every {ds.rescore_every} decisions" if ds.rescore_every
                                            else "review rounds off")
                          + ("; differing votes apply CROWDLAB's consensus at quality >= "
                             f"{ds.consensus_threshold:g}" if ds.consensus_threshold is not None
                             else "; consensus threshold off (unanimity)")
                          + (f"; random audit {ds.audit_share:g} of the cards served" if ds.audit_share
                             else "; random audit off")
                          + (f"; the queue is fed by imported model run {ds.queue_run_id}" if ds.queue_run_id
                             else "; the queue is fed by the latest product run"))
