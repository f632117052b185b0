"""`make demo`: set up the embedded default and run the web server and a worker together until Ctrl-C.

The terminal shows one progress bar per pipeline stage (the bar the job commands draw, curation.management.jobcommand)
and, once the review queue is ready, the address and the logins last, after anything the servers printed: their
output goes to log files under FER_DATA_DIR/demo/logs, and the demo prints a log's tail if its process dies.
"""
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
from curation.management.jobcommand import JobCommand
from curation.models import Dataset, Job
from curation.truth import TruthError, known_truth, truth_path, truth_register
from training.synthetic_faces import make_synthetic_faces

DEMO_USERS = (("curator", "curator", "curators", True), ("reviewer", "reviewer", "reviewers", False))
DEMO_DATASET = "demo"
DEMO_PAIR = ("happy", "sad")

# The demo's synthetic faces: 20 % of the train + val labels wrong (truth.csv says which), a noise-free test split of
# 20 %. Difficulty 0.3 and 48 px, as the cleaning benchmark's CPU profile (docs/results.md): at the generator's
# default (0.6) a small CPU classifier stays near chance on a few thousand faces and the CycleGANs learn nothing.
DEMO_FACES = dict(n=4000, size=48, noise=0.2, difficulty=0.2, test_fraction=0.2, seed=0)
DEMO_CLASSIFIER = dict(arch="small_cnn", size=48, epochs=16, folds=3, batch_size=64)
DEMO_CYCLEGAN = dict(profile="cpu", size=48, epochs=6, epochs_decay=6)
# `demo --quick`: the same pipeline on a quarter of the faces with a few epochs, for checking that it runs (the test
# suite's end-to-end demo); it shows the plumbing, not the figures above.
QUICK = {"faces": dict(DEMO_FACES, n=1000), "classifier": dict(DEMO_CLASSIFIER, epochs=3),
         "cyclegan": dict(DEMO_CYCLEGAN, epochs=1, epochs_decay=1)}

STAGE_TITLES = {"import_dataset": "import the faces", "train_classifier": "train the classifier",
                "train_cyclegan": "train a CycleGAN", "score_ambiguity": "score the queue",
                "map_dataset": "map the dataset"}
BAR_STEP = 0.05  # without a terminal, a stage's bar is printed again only every 5 % (and when its status changes)


def write_demo_dataset(root, faces=None):
    """The demo's synthetic faces, written once: labels.csv is written last, so its presence means complete."""
    manifest = Path(root) / "labels.csv"
    if not manifest.exists():
        make_synthetic_faces(root, **(faces or DEMO_FACES))
    return manifest


def demo_stages(manifest, quick=False):
    """The pipeline the demo runs, in order, each stage once: sized to reach a ready queue in minutes on 2 cores."""
    classifier, cyclegan = (QUICK["classifier"], QUICK["cyclegan"]) if quick else (DEMO_CLASSIFIER, DEMO_CYCLEGAN)
    return [
        ("import_dataset", {"path": str(manifest), "format": "csv", "name": DEMO_DATASET}),
        ("train_classifier", {"dataset": DEMO_DATASET, **classifier}),
        ("train_cyclegan", {"dataset": DEMO_DATASET, "pair": list(DEMO_PAIR), **cyclegan}),
        ("score_ambiguity", {"dataset": DEMO_DATASET}),
        # The dataset map of the classifier's out-of-fold embeddings: PCA, seconds (UMAP would add a minute here).
        ("map_dataset", {"dataset": DEMO_DATASET, "method": "pca"}),
    ]


def advance(stages, say):
    """Start the first stage that has not succeeded, once the one before it has.

    Returns (done, index, job): done is True when every stage succeeded or one cannot go on (said through `say`);
    index and job are the stage now queued or running (None when done)."""
    for index, (kind, params) in enumerate(stages):
        job = job_latest(kind=kind)
        if job is None:
            try:
                job = job_enqueue(kind=kind, params=params)
            except JobParamsError as exc:
                say(f"demo stage {kind} cannot start: {exc}")
                return True, None, None
            return False, index, job
        if job.status in (Job.Status.FAILED, Job.Status.CANCELLED):
            say(f"demo stage {kind} {job.status} (job {job.pk}): {job.message}")
            return True, None, None  # stop advancing; the jobs page and `manage.py jobs` show why
        if job.status != Job.Status.SUCCEEDED:
            return False, index, job
    return True, None, None


def stage_line(index, total, kind, job, width=30):
    """One stage's progress line: '[2/4] train the classifier  [####......]  40.0% running: ...'."""
    return f"[{index + 1}/{total}] {STAGE_TITLES.get(kind, kind):<21} {JobCommand.bar(job, width=width)}"


class StageProgress:
    """Draws the running stage's bar: on a terminal, one line rewritten in place and left behind finished when the
    next stage starts; elsewhere (a log file) a new line every BAR_STEP of progress or change of status."""

    def __init__(self, write, tty):
        self.write, self.tty = write, tty
        self.job_id = self.last = self.key = None

    def show(self, index, total, kind, job):
        if job.pk != self.job_id:
            self.close()
            self.job_id = job.pk
        line = stage_line(index, total, kind, job)
        if self.tty:
            if line != self.last:
                self.write("\r" + line[:150].ljust(150), ending="")
        else:
            key = (job.status, int(job.progress / BAR_STEP))
            if key != self.key:
                self.write(line)
            self.key = key
        self.last = line

    def close(self, job=None, index=None, total=None, kind=None):
        """End the current bar's line (with the job's final state, when given)."""
        if job is not None:
            self.show(index, total, kind, job)
        if self.tty and self.last is not None:
            self.write("")
        self.job_id = self.last = self.key = None


def queue_summary(dataset):
    """A line on the queue's quality from the dataset's known truth, or '' where none is registered."""
    truth = known_truth(dataset=dataset)
    if truth is None or not truth.queue_scored:
        return ""
    n = min(truth.queue_top, truth.queue_scored)
    return (f"  known truth: {truth.queue_wrong} of the queue's first {n} images have wrong labels "
            f"({truth.base_rate:.0%} of all images do)")


def ready_banner(addr, summary=""):
    """What the demo prints last, once the queue is ready: the address, the logins, how to stop."""
    rule = "=" * 78
    lines = [rule, "  The demo is ready.",
             f"  Open http://{addr}/   (review queue: http://{addr}/review/)",
             "  reviewer login: reviewer / reviewer    curator login: curator / curator"]
    if summary:
        lines.append(summary)
    lines += [f"  data: {settings.DATA_DIR}   (Ctrl-C stops the web server and the worker)", rule]
    return "\n" + "\n".join(lines) + "\n"


def register_demo_truth(faces, say):
    """Register the demo's truth.csv as the demo dataset's known truth, once its import has succeeded."""
    dataset = Dataset.objects.filter(name=DEMO_DATASET).first()
    imported = job_latest(kind="import_dataset")
    if dataset is None or truth_path(dataset).exists() or imported is None or imported.status != Job.Status.SUCCEEDED:
        return
    try:
        truth_register(dataset=dataset, source=Path(faces) / "truth.csv")
    except TruthError as exc:
        say(f"demo: the known-truth panel stays off: {exc}")


def tail(path, lines=20):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Command(BaseCommand):
    help = ("Run the demo on the embedded default: migrate, demo users and dataset, web server and worker, and the "
            "pipeline (import, classifier, a CycleGAN, scores) up to a ready review queue.")

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("FER_DEMO_ADDR", "127.0.0.1:8000"),
                            help="HOST:PORT of the web server (default: FER_DEMO_ADDR, else 127.0.0.1:8000)")
        parser.add_argument("--setup-only", action="store_true", help="prepare everything but start no process")
        parser.add_argument("--import-only", action="store_true", help="import the demo data, train and score nothing")
        parser.add_argument("--quick", action="store_true",
                            help="a quarter of the faces and a few epochs: checks that the pipeline runs, in a few "
                                 "minutes, without the demo's figures")

    def handle(self, *args, **options):
        call_command("migrate", "--noinput", verbosity=0)
        for username, password, group, is_staff in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": is_staff})
            if created:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get_or_create(name=group)[0])
        faces = Path(settings.DATA_DIR) / "demo" / "faces"
        face_options = QUICK["faces"] if options["quick"] else DEMO_FACES
        if not (faces / "labels.csv").exists():
            self.stdout.write(f"demo: writing {face_options['n']} synthetic faces to {faces} ...")
        source = write_demo_dataset(faces, face_options)
        if options["setup_only"]:
            self.stdout.write(f"demo prepared under {settings.DATA_DIR}")
            return

        logs = Path(settings.DATA_DIR) / "demo" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        procs = []
        env = dict(os.environ)
        worker = [sys.executable, "-m", "celery", "-A", "fer_site", "worker", "-Q", "cpu,gpu", "-c", "1",
                  "-n", "demo@%h", "--loglevel", "WARNING"]
        web = [sys.executable, "manage.py", "runserver", "--noreload", options["addr"]]
        for name, argv in (("worker", worker), ("web", web)):
            log = open(logs / f"{name}.log", "ab")
            procs.append((name, logs / f"{name}.log", subprocess.Popen(
                argv, cwd=settings.BASE_DIR, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)))
            log.close()
        stages = demo_stages(source, quick=options["quick"])
        stages = stages[:1] if options["import_only"] else stages
        self.stdout.write(f"demo: web server starting at http://{options['addr']}/ and a worker "
                          f"(their logs: {logs}); the logins follow once the review queue is ready.")
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        bars = StageProgress(self.stdout.write, self.stdout.isatty())
        finished, last_check, current = False, 0.0, None
        try:
            while not stop["now"] and all(p.poll() is None for _, _, p in procs):
                if not finished and time.monotonic() - last_check > 1:
                    last_check = time.monotonic()
                    register_demo_truth(faces, self.stdout.write)
                    if current is not None:  # the stage drawn last: its final state ends its bar
                        index, kind, job = current
                        job.refresh_from_db()
                        if job.is_finished:
                            bars.close(job, index, len(stages), kind)
                            current = None
                    finished, index, job = advance(stages, self.stdout.write)
                    if job is not None:
                        current = (index, stages[index][0], job)
                        bars.show(index, len(stages), stages[index][0], job)
                    if finished:
                        bars.close()
                        register_demo_truth(faces, self.stdout.write)
                        ready = all((j := job_latest(kind=k)) and j.status == Job.Status.SUCCEEDED for k, _ in stages)
                        dataset = Dataset.objects.filter(name=DEMO_DATASET).first()
                        if ready:
                            summary = queue_summary(dataset) if dataset else ""
                            self.stdout.write(self.style.SUCCESS(ready_banner(options["addr"], summary)))
                        else:
                            self.stdout.write(f"demo: the pipeline stopped; the site is at http://{options['addr']}/ "
                                              f"(reviewer / reviewer, curator / curator), its jobs page says why")
                time.sleep(0.5)
        finally:
            bars.close()
            for _, _, p in procs:
                if p.poll() is None:
                    # Cold shutdown for the worker: a job it was running is resumed on the next start.
                    p.send_signal(signal.SIGQUIT if "celery" in p.args else signal.SIGTERM)
            for _, _, p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        dead = [(name, log) for name, log, p in procs
                if p.returncode not in (0, -signal.SIGTERM, -signal.SIGQUIT, None)]
        if dead and not stop["now"]:
            for name, log in dead:
                self.stderr.write(f"the {name} process exited; the end of {log}:\n{tail(log)}")
            self.stderr.write(f"stopped because a process exited: {[name for name, _ in dead]}")
            sys.exit(1)
