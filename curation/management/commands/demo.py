"""`make demo`: set up the embedded default and run the web server and a worker together until Ctrl-C."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from PIL import Image, ImageDraw

from curation.jobs.services import job_enqueue
from curation.labels import CLASSES
from curation.models import Dataset

DEMO_USERS = (("curator", "curator", "curators", True), ("reviewer", "reviewer", "reviewers", False))

# Placeholder faces until the synthetic face generator lands: (mouth curve, mouth open, brow tilt, eye size).
_EXPRESSION = {
    "neutral": (0, 0, 0, 3), "happy": (6, 0, 0, 3), "sad": (-5, 0, 3, 3), "surprise": (0, 8, -2, 5),
    "fear": (-2, 6, 3, 5), "disgust": (-3, 0, -3, 2), "anger": (-4, 0, -4, 3), "contempt": (3, 0, 1, 3),
}


def draw_placeholder_face(label, rng, size=64):
    curve, open_, brow, eye = _EXPRESSION[label]
    bg = tuple(int(v) for v in rng.integers(150, 230, 3))
    skin = tuple(int(v) for v in rng.integers(120, 230, 3))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    cx, cy = size / 2 + rng.normal(0, 2), size / 2 + rng.normal(0, 2)
    d.ellipse([cx - 22, cy - 27, cx + 22, cy + 27], fill=skin)
    for side in (-1, 1):
        ex = cx + side * 9
        d.ellipse([ex - eye / 2 - 1, cy - 8 - eye / 2, ex + eye / 2 + 1, cy - 8 + eye / 2], fill=(30, 30, 30))
        d.line([ex - 5, cy - 15 + side * brow / 2, ex + 5, cy - 15 - side * brow / 2], fill=(60, 40, 20), width=2)
    if open_:
        d.ellipse([cx - 5, cy + 9, cx + 5, cy + 9 + open_], fill=(90, 20, 20))
    else:
        d.arc([cx - 9, cy + 8 - abs(curve), cx + 9, cy + 8 + abs(curve) + 1], 0 if curve >= 0 else 180,
              180 if curve >= 0 else 360, fill=(90, 20, 20), width=2)
    return im


def write_placeholder_dataset(root, *, per_class=16, seed=0):
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        for i in range(per_class):
            path = Path(root) / label / f"{label}_{i:03d}.png"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                draw_placeholder_face(label, rng).save(path)
    return Path(root)


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
        source = write_placeholder_dataset(Path(settings.DATA_DIR) / "demo" / "faces")
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
            job = job_enqueue(kind="import_dataset", params={"path": str(source), "format": "imagefolder", "name": "demo"})
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
