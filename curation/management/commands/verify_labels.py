from django.core.management.base import CommandError

from curation.audit import labels_verify, read_snapshot
from curation.management.migrated import DatabaseCommand
from curation.models import Dataset
from curation.selectors import DatasetNotFound, dataset_get


def dataset_named(name):
    """The Dataset called `name`, or CommandError naming the known ones."""
    try:
        return dataset_get(name=name)
    except DatasetNotFound:
        known = ", ".join(Dataset.objects.order_by("name").values_list("name", flat=True)[:20]) or "none"
        raise CommandError(f"no dataset named {name!r} (datasets: {known})") from None


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
        dataset = dataset_named(options["dataset"]) if options["dataset"] else None
        # One snapshot, so that every batch reads the same state while reviewers keep working.
        with read_snapshot():
            report = labels_verify(dataset=dataset)
        report_write(self.stdout, report)
        if report.mismatches:
            raise CommandError(f"{len({m.image_id for m in report.mismatches})} images disagree with their audit "
                               f"trail")
