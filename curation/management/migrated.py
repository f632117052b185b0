"""One check for every command that reads or writes the product's tables: on a database that lacks the product's
migrations (a fresh data folder, a new PostgreSQL database), the command stops before it starts with an error that
names `python manage.py migrate`, instead of Django's 'no such table' traceback half-way through."""
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def unapplied_migrations():
    """The migrations the default database still lacks (a fresh data folder has none applied)."""
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def require_migrated():
    missing = unapplied_migrations()
    if missing:
        raise CommandError(f"the database {connection.settings_dict['NAME']} lacks {len(missing)} migration(s) "
                           "of the product: run `python manage.py migrate` first")


class DatabaseCommand(BaseCommand):
    """A management command that needs the product's tables: checks them after its arguments are parsed (so
    --help and argument errors come first) and before handle() runs."""

    def execute(self, *args, **options):
        require_migrated()
        return super().execute(*args, **options)
