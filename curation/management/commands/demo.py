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

from curation.jobs.services import job_enqueue
from curation.models import Dataset
from training.synthetic_faces import make_synthetic_faces

DEMO_USERS = (("curator", "curator", "curators", True), ("reviewer", "reviewer", "reviewers", False))

DEMO_FACES = 1000  # synthetic faces, 20 % of the train + val labels wrong (truth.csv says which)


def write_demo_dataset(root):
    """The demo's synthetic faces, written once: labels.csv is written last, so its presence means complete."""
    manifest = Path(root) / "labels.csv"
    if not manifest.exists():
        make_synthetic_faces(root, n=DEMO_FACES, size=64, noise=0.2, seed=0)
    return manifest


class Command(BaseCommand):
    help = "Run the demo on the embedded default: migrate, demo users and dataset, web server and worker."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("FER_DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--setup-only", action="store_true", help="prepare everything but start no process")

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
        if not Dataset.objects.filter(name="demo").exists():
            job = job_enqueue(kind="import_dataset", params={"path": str(source), "format": "csv", "name": "demo"})
            self.stdout.write(f"importing the demo dataset on the worker (job {job.pk})")
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
        try:
            while not stop["now"] and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()  # the worker's main process stops its pool children itself (warm shutdown)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        dead = [p.args[3] if "celery" in p.args else "web server" for p in procs if p.returncode not in (0, -15, None)]
        if dead and not stop["now"]:
            self.stderr.write(f"stopped because a process exited: {dead}")
            sys.exit(1)
