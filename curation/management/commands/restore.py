from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from curation.audit import labels_verify
from curation.backup import (
    PROBLEMS_SHOWN,
    BackupError,
    media_check,
    restore_database,
    restore_sign_out,
    restored_counts,
)
from curation.management.commands.verify_labels import report_write


class Command(BaseCommand):
    help = ("Restore a backup from DIR onto an empty database (a new SQLite file or PostgreSQL database; `migrate` "
            "alone is fine), apply any newer migrations, check the media list against MEDIA_ROOT and run "
            "verify_labels on the result. Exits non-zero if a media file is missing or different or an image "
            "disagrees with its audit trail (the database stays restored).")

    def add_arguments(self, parser):
        parser.add_argument("directory", help="A folder written by `manage.py backup`.")

    def handle(self, *args, **options):
        directory = options["directory"]
        try:
            manifest = restore_database(directory, log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        call_command("migrate", interactive=False, verbosity=0)
        counts = restored_counts()
        expected = {k: manifest["counts"][k] for k in counts}
        if counts != expected:
            raise CommandError(f"the restored database holds {counts}, the backup's manifest says {expected}")
        self.stdout.write(f"{counts['images']} images and {counts['label_changes']} label changes restored")
        tokens, sessions = restore_sign_out()
        self.stdout.write(f"signed everyone out: {tokens} API token{'s' if tokens != 1 else ''} and {sessions} "
                          f"session{'s' if sessions != 1 else ''} dropped (a backup holds those valid when it was "
                          f"taken, revoked ones too): sign in again, and issue scripts new tokens")

        failures = []
        problems = media_check(directory)
        for line in problems[:PROBLEMS_SHOWN]:
            self.stdout.write(f"media file {line}")
        if len(problems) > PROBLEMS_SHOWN:
            self.stdout.write(f"... and {len(problems) - PROBLEMS_SHOWN} more")
        self.stdout.write(f"media: {manifest['media_files'] - len(problems)} of {manifest['media_files']} listed "
                          f"files present and unchanged")
        if problems:
            failures.append(f"{len(problems)} media files missing or different under the media root (put the "
                            f"media folder back: {directory}/media.csv lists each file's size and SHA-256)")
        report = labels_verify()
        report_write(self.stdout, report)
        if report.mismatches:
            failures.append(f"{len({m.image_id for m in report.mismatches})} images disagree with their audit trail")
        if failures:
            raise CommandError("database restored, but " + "; ".join(failures))
        self.stdout.write(f"restore from {directory} complete")
