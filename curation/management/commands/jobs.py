from django.core.management.base import CommandError

from curation.jobs.selectors import JobNotFound, job_get, jobs_recent
from curation.jobs.services import job_cancel
from curation.management.migrated import DatabaseCommand


class Command(DatabaseCommand):
    help = "List recent jobs, or cancel one with --cancel ID."

    def add_arguments(self, parser):
        parser.add_argument("--cancel", type=int, metavar="ID")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, **options):
        if options["cancel"]:
            try:
                job_get(job_id=options["cancel"])
            except JobNotFound as exc:
                raise CommandError(str(exc)) from None
            job = job_cancel(job_id=options["cancel"])
            self.stdout.write(f"job {job.pk}: {job.status} ({job.message})")
            return
        for job in jobs_recent(limit=options["limit"]):
            self.stdout.write(
                f"{job.pk:>6} {job.kind:<16} {job.status:<10} {job.progress * 100:5.1f}% attempts={job.attempts} {job.message}"
            )
