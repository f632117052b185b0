"""`make demo`: set up the embedded default and run the web server and a worker together until Ctrl-C."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

from curation.jobs.errors import JobParamsError
from curation.jobs.selectors import job_latest
from curation.jobs.services import job_enqueue
from curation.models import Job
from training.synthetic_faces import make_synthetic_faces

DEMO_USERS = (("curator", "curator", "curators", True), ("reviewer", "reviewer", "reviewers", False))

DEMO_FACES = 1000  # synthetic faces, 20 % of the train + val labels wrong (truth.csv says which)


def write_demo_dataset(root):
    """The demo's synthetic faces, written once: labels.csv is written last, so its presence means complete."""
    manifest = Path(root) / "labels.csv"
    if not manifest.exists():
        make_synthetic_faces(root, n=DEMO_FACES, size=64, noise=0.2, seed=0)
    return manifest


def demo_stages(manifest):
    """The pipeline the demo runs, in order, each stage once: sized to reach a ready queue in minutes on 2 cores."""
    return [
        ("import_dataset", {"path": str(manifest), "format": "csv", "name": "demo"}),
        ("train_classifier", {"dataset": "demo", "arch": "small_cnn", "epochs": 8, "folds": 3, "batch_size": 64}),
        ("train_cyclegan", {"dataset": "demo", "pair": ["happy", "sad"], "profile": "cpu", "epochs": 6,
                            "epochs_decay": 6}),
        ("score_ambiguity", {"dataset": "demo"}),
    ]


def advance(stages, say):
    """Start the first stage that has not succeeded, once the one before it has; returns True when all are done."""
    for kind, params in stages:
        job = job_latest(kind=kind)
        if job is None:
            try:
                job = job_enqueue(kind=kind, params=params)
            except JobParamsError as exc:
                say(f"demo stage {kind} cannot start: {exc}")
                return True
            say(f"demo: {kind} started (job {job.pk})")
            return False
        if job.status in (Job.Status.FAILED, Job.Status.CANCELLED):
            say(f"demo stage {kind} {job.status} (job {job.pk}): {job.message}")
            return True  # stop advancing; the jobs page and `manage.py jobs` show why
        if job.status != Job.Status.SUCCEEDED:
            return False
    return True


class Command(BaseCommand):
    help = "Run the demo on the embedded default: migrate, demo users and dataset, web server and worker."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("FER_DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--setup-only", action="store_true", help="prepare everything but start no process")
        parser.add_argument("--import-only", action="store_true", help="import the demo data, train and score nothing")

    def handle(self, *args, **options):
        call_command("migrate", "--noinput", verbosity=0)
        for username, password, group, is_staff in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": is_staff})
            if created:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get_or_create(name=group)[0])
        source = write_demo_dataset(Path(settings.DATA_DIR) / "demo" / "faces")
        if options["setup_only"]:
            self.stdout.write(f"demo prepared under {settings.DATA_DIR}")
            return

        procs = []
        env = dict(os.environ)
        worker = [sys.executable, "-m", "celery", "-A", "fer_site", "worker", "-Q", "cpu,gpu", "-c", "1",
                  "-n", "demo@%h", "--loglevel", "WARNING"]
        web = [sys.executable, "manage.py", "runserver", "--noreload", options["addr"]]
        procs.append(subprocess.Popen(worker, cwd=settings.BASE_DIR, env=env, start_new_session=True))
        procs.append(subprocess.Popen(web, cwd=settings.BASE_DIR, env=env, start_new_session=True))
        stages = demo_stages(source)[:1] if options["import_only"] else demo_stages(source)
        self.stdout.write(self.style.SUCCESS(
            f"\nFER label curation is running at http://{options['addr']}/\n"
            f"  reviewer login: reviewer / reviewer    curator login: curator / curator\n"
            f"  data: {settings.DATA_DIR}   (Ctrl-C stops the web server and the worker)\n"
        ))
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        finished, last_check = False, 0.0
        try:
            while not stop["now"] and all(p.poll() is None for p in procs):
                if not finished and time.monotonic() - last_check > 2:
                    last_check = time.monotonic()
                    finished = advance(stages, self.stdout.write)
                    if finished:
                        self.stdout.write(self.style.SUCCESS(
                            f"demo pipeline done: the review queue is ready at http://{options['addr']}/review/"))
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    # Cold shutdown for the worker: a job it was running is resumed on the next start.
                    p.send_signal(signal.SIGQUIT if "celery" in p.args else signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        dead = [p.args[3] if "celery" in p.args else "web server" for p in procs
                if p.returncode not in (0, -signal.SIGTERM, -signal.SIGQUIT, None)]
        if dead and not stop["now"]:
            self.stderr.write(f"stopped because a process exited: {dead}")
            sys.exit(1)
