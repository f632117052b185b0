from django.core.management.base import CommandError

from curation.jobs.selectors import job_outputs_disagreeing
from curation.management.migrated import DatabaseCommand


class Command(DatabaseCommand):
    help = ("Check that every classifier run and CycleGAN agrees with its job: running while the job is queued or "
            "running, and ended as the job ended (succeeded, failed, cancelled). Prints one line per row that "
            "disagrees (a failed job whose run still says running, a running run whose job was deleted) and exits "
            "non-zero if any does.")

    def handle(self, *args, **options):
        checked, found = job_outputs_disagreeing()
        for line in found:
            self.stdout.write(line)
        self.stdout.write(f"{checked} runs and generators checked: {len(found)} disagree with their job")
        if found:
            raise CommandError(f"{len(found)} runs or generators disagree with their job")
