from django.core.management.base import CommandError

from curation.backup import BackupError, backup_write
from curation.management.migrated import DatabaseCommand


class Command(DatabaseCommand):
    help = ("Write a consistent backup into DIR (new or empty) while reviewers keep working: the database "
            "(SQLite online backup or pg_dump), each dataset's cleaned-label CSV and a list of the media files the "
            "database points at with their sizes and SHA-256. The media files themselves are not copied.")

    def add_arguments(self, parser):
        parser.add_argument("directory", help="A new or empty folder.")

    def handle(self, *args, **options):
        try:
            manifest = backup_write(options["directory"], log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"backup written to {options['directory']} ({manifest['finished_at']})")
