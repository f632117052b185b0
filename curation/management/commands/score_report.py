from django.core.management.base import CommandError

from curation.jobs.errors import JobParamsError
from curation.management.migrated import DatabaseCommand
from curation.scoring.evaluate import evaluate_signals, read_truth
from curation.selectors import dataset_resolve
from training.labels import CLASSES


class Command(DatabaseCommand):
    help = "AUROC and average precision of each scoring signal against known wrong labels (a truth.csv)."

    def add_arguments(self, parser):
        parser.add_argument("--dataset")
        parser.add_argument("--truth", required=True, help="truth.csv from make_synthetic_faces")

    def handle(self, *args, **options):
        try:
            dataset = dataset_resolve(name=options["dataset"])
        except JobParamsError as exc:
            raise CommandError(str(exc)) from None
        report = evaluate_signals(dataset, read_truth(options["truth"]))
        if not report:
            raise CommandError("no scored train image matches the truth file: run score_ambiguity first")
        out = self.stdout.write
        out(f"{'signal':<34} {'scope':<10} {'AUROC':>6} {'AP':>6} {'images':>7} {'noisy':>6}")
        for name, per in report.items():
            for scope in ("all", *CLASSES):
                m = per.get(scope)
                if m:
                    out(f"{name:<34} {scope:<10} {m['auroc']:6.3f} {m['ap']:6.3f} {m['n']:7d} {m['noisy']:6d}")
