"""Register a dataset's known true labels (a truth.csv), shown on its pages by the known-truth panel only."""
from django.core.management.base import CommandError

from curation.management.migrated import DatabaseCommand
from curation.selectors import DatasetNotFound, dataset_resolve
from curation.truth import TruthError, truth_register


class Command(DatabaseCommand):
    help = ("Register PATH (a CSV with columns path,true_label, such as make_synthetic_faces' truth.csv) as the "
            "known truth of a dataset: copied to FER_DATA_DIR/truth/NAME.csv and shown on the dataset's page as "
            "how many of the queue's first 50 are wrong and how many wrong labels reviewers have fixed. No score "
            "or queue reads it. Refused unless its paths are exactly the dataset's images.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("path", help="truth CSV: path,true_label[,...] with a header")

    def handle(self, *args, dataset, path, **options):
        try:
            ds = dataset_resolve(name=dataset)
            result = truth_register(dataset=ds, source=path)
        except (DatasetNotFound, TruthError) as exc:
            raise CommandError(str(exc)) from None
        share = result["wrong"] / result["images"]
        self.stdout.write(f"registered the truth of {ds.name}: {result['images']} images, {result['wrong']} "
                          f"imported labels wrong ({share:.1%}); stored at {result['path']}")
