"""Base for commands that start a job: enqueue it, then show its progress until it ends.

--no-wait prints the job id and returns; --inline runs the same job in this process (same Job row, same code).
"""
import sys

from django.core.management.base import CommandError

from curation.jobs.errors import JobParamsError
from curation.jobs.follow import job_failure, job_follow, job_run_here
from curation.jobs.selectors import workers_alive
from curation.jobs.services import job_enqueue
from curation.management.migrated import DatabaseCommand
from curation.models import Job

NO_WORKER_EXIT = 3


class JobCommand(DatabaseCommand):
    job_kind = None
    # How long to wait for a worker to show up before saying there is none.
    worker_grace_seconds = 15.0

    def add_job_arguments(self, parser):
        raise NotImplementedError

    def job_params(self, options):
        raise NotImplementedError

    def report(self, job):
        """Print what a finished job produced."""

    def add_arguments(self, parser):
        self.add_job_arguments(parser)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
        mode.add_argument("--inline", action="store_true", help="run the job in this process instead of on a worker")

    def preview(self, params):
        """Say what the job will do, before anything is queued (raise JobParamsError to refuse)."""

    def handle(self, *args, **options):
        try:
            params = self.job_params(options)
            self.preview(params)
            job = job_enqueue(kind=self.job_kind, params=params, send=not options["inline"])
        except JobParamsError as exc:
            raise CommandError(str(exc)) from None
        if options["no_wait"]:
            self.stdout.write(str(job.pk))
            return
        if options["inline"]:
            self.stderr.write(f"job {job.pk} ({job.kind}) running in this process")
            job = job_run_here(job)
        else:
            job = self.wait(job)
        self.report(job)
        if isinstance(job.result, dict) and job.result.get("warning"):
            self.stdout.write(f"warning: {job.result['warning']}")
        failure = job_failure(job)
        if failure:
            raise CommandError(failure)

    def wait(self, job):
        self.stderr.write(f"job {job.pk} ({job.kind}) queued on '{job.queue}'")
        tty = sys.stderr.isatty()
        last_line = None

        def on_poll(job, waited):
            nonlocal last_line
            if job.status == Job.Status.QUEUED and not workers_alive(queue=job.queue):
                if waited > self.worker_grace_seconds:
                    self.stderr.write("")
                    raise CommandError(
                        f"no worker is consuming queue '{job.queue}' (none reported in within "
                        f"{self.worker_grace_seconds:.0f} s). Job {job.pk} stays queued and runs when one starts: "
                        f"start a worker with `make worker` (or `.venv/bin/celery -A fer_site worker -Q cpu,gpu`), "
                        f"or run the job here with --inline.",
                        returncode=NO_WORKER_EXIT,
                    )
            line = self.bar(job)
            if line != last_line:
                if tty:
                    self.stderr.write("\r" + line.ljust(100), ending="")
                else:
                    self.stderr.write(line)
                last_line = line

        try:
            job = job_follow(job, on_poll=on_poll)
        except KeyboardInterrupt:
            self.stderr.write("")
            raise CommandError(
                f"stopped watching; job {job.pk} goes on. Cancel it with `python manage.py jobs --cancel {job.pk}`",
                returncode=130,
            ) from None
        if tty:
            self.stderr.write("\r" + self.bar(job).ljust(100))
        else:
            self.stderr.write(self.bar(job))
        return job

    @staticmethod
    def bar(job, width=30):
        filled = int(round(job.progress * width))
        attempt = f" (attempt {job.attempts})" if job.attempts > 1 else ""
        return f"[{'#' * filled}{'.' * (width - filled)}] {job.progress * 100:5.1f}% {job.status}{attempt}: {job.message}"
