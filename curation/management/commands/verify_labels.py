from django.core.management.base import CommandError

from curation.audit import labels_verify, read_snapshot
from curation.management.migrated import DatabaseCommand
from curation.selectors import DatasetUnresolved, dataset_resolve


def report_write(stdout, report):
    """Print a Report: one line per mismatch, then the summary."""
    for mismatch in report.mismatches:
        stdout.write(str(mismatch))
    images = {m.image_id for m in report.mismatches}
    stdout.write(f"{report.images} images and {report.changes} label changes checked: "
                 f"{len(report.mismatches)} mismatches on {len(images)} images")


class Command(DatabaseCommand):
    help = ("Replay every image's audit trail (LabelChange rows, undos included) from its original label and report "
            "each image whose label, status, reviewer or version differs from what the trail says. Exits non-zero "
            "if any does.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", help="Only this dataset (default: all).")

    def handle(self, *args, **options):
        try:
            dataset = dataset_resolve(name=options["dataset"]) if options["dataset"] else None
        except DatasetUnresolved as exc:
            raise CommandError(str(exc)) from None
        # One snapshot, so that every batch reads the same state while reviewers keep working.
        with read_snapshot():
            report = labels_verify(dataset=dataset)
        report_write(self.stdout, report)
        if report.mismatches:
            raise CommandError(f"{len({m.image_id for m in report.mismatches})} images disagree with their audit "
                               f"trail")
