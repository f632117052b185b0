"""Show or set a dataset's review settings: how many reviewers decide each image (Dataset.reviews_required)."""
from django.core.management.base import BaseCommand, CommandError

from curation.classifier.rescore import dataset_rescore_every_set
from curation.models import MAX_REVIEWS_REQUIRED
from curation.review.crowdlab import dataset_consensus_threshold_set
from curation.review.dataset_settings import dataset_reviews_required_set
from curation.selectors import DatasetNotFound, dataset_get


class Command(BaseCommand):
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

    def handle(self, *args, dataset, reviews_required, rescore_every=None, consensus_threshold=None, **options):
        try:
            ds = dataset_get(name=dataset)
        except DatasetNotFound as exc:
            raise CommandError(str(exc)) from None
        if reviews_required is not None:
            try:  # the service the dataset page's form calls: the same values refused with the same words
                dataset_reviews_required_set(dataset_id=ds.pk, reviews_required=reviews_required)
            except ValueError as exc:
                raise CommandError(f"--reviews-required: {exc}") from None
            ds.refresh_from_db()
        if rescore_every is not None:
            try:
                dataset_rescore_every_set(dataset_id=ds.pk, rescore_every=rescore_every)
            except ValueError as exc:
                raise CommandError(f"--rescore-every: {exc}") from None
            ds.refresh_from_db()
        if consensus_threshold is not None:
            try:
                dataset_consensus_threshold_set(dataset_id=ds.pk, consensus_threshold=consensus_threshold)
            except ValueError as exc:
                raise CommandError(f"--consensus-threshold: {exc}") from None
            ds.refresh_from_db()
        self.stdout.write(f"{ds.name}: {ds.reviews_required} review{'s' if ds.reviews_required != 1 else ''} "
                          f"per image; " + (f"rescored after every {ds.rescore_every} decisions" if ds.rescore_every
                                            else "review rounds off")
                          + ("; differing votes apply CROWDLAB's consensus at quality >= "
                             f"{ds.consensus_threshold:g}" if ds.consensus_threshold is not None
                             else "; consensus threshold off (unanimity)"))
