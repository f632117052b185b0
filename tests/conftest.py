import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import UserFactory

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """On CI the suite must run against the real services; a missing one is an error, not a skip."""
    if os.environ.get("CI", "").lower() != "true":
        return
    db, broker = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not db.startswith(("postgres://", "postgresql://")) or not broker.startswith("redis://"):
        raise pytest.UsageError(
            f"CI=true needs DATABASE_URL=postgres://... and CELERY_BROKER_URL=redis://... (got {db!r}, {broker!r})"
        )
    import psycopg
    import redis

    try:
        psycopg.connect(db.replace("postgresql://", "postgres://"), dbname="postgres", connect_timeout=5).close()
        redis.Redis.from_url(broker, socket_connect_timeout=5).ping()
    except Exception as exc:
        raise pytest.UsageError(f"CI=true but a service is unreachable: {exc}") from exc


@pytest.fixture(scope="session", autouse=True)
def _import_roots_cover_tmp_path(tmp_path_factory):
    """Tests import from their tmp_path folders: those are import roots here (and for the processes tests start,
    which read FER_IMPORT_ROOTS), next to the default ones. Tests of the refusal set their own roots."""
    roots = [*settings.FER_IMPORT_ROOTS, tmp_path_factory.getbasetemp()]
    settings.FER_IMPORT_ROOTS = roots
    os.environ["FER_IMPORT_ROOTS"] = os.pathsep.join(str(r) for r in roots)


@pytest.fixture(scope="session", autouse=True)
def _clean_broker():
    """Drop messages a previous run left in the test broker, so they cannot run jobs of this run."""
    from fer_site.celery import app

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        shutil.rmtree(settings.BROKER_DIR / "queue", ignore_errors=True)
        (settings.BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    else:
        with app.connection_for_write() as conn:
            for queue in ("cpu", "gpu"):
                try:
                    conn.default_channel.queue_purge(queue)
                except Exception:
                    pass


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def inline_jobs(settings):
    """For jobs run with --inline inside a test's open transaction: the heartbeat thread uses its own database
    connection, which cannot see the Job row yet (PostgreSQL: its update matches nothing, so the job thinks it was
    taken away; SQLite: it waits on the lock). These jobs finish well within the interval set here."""
    settings.JOB_HEARTBEAT_SECONDS = 3600


@pytest.fixture
def one_torch_thread():
    """Two OpenMP threads on a loaded 2-core machine spin against each other; one is much faster here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser():
    """The system Chromium under Playwright, once per module (tests/browser.py)."""
    from tests.browser import launch_chromium

    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def user(db):
    return UserFactory(username="reviewer")


def worker_database_url():
    """A URL that points a worker process at the database this test run uses (the test database)."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] or ""
    if s["PASSWORD"]:
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Process:
    """A command in its own process group, logging to a file; stop() and kill() end the whole group."""

    def __init__(self, argv, *, env, log_path, cwd=REPO):
        self.argv = argv
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self, last=None):
        """The log so far; its `last` characters only, if given (for an assertion's message)."""
        text = self.log_path.read_text(errors="replace")
        return text if last is None else text[-last:]

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL the whole process group: the process and its children die with no chance to clean up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout=20):
        """SIGTERM the group, SIGKILL it if it has not ended within `timeout` seconds; close the log."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class WorkerProcess(Process):
    """A real `celery worker` process in its own process group, logging to a file."""

    def __init__(self, *, env, log_path, name):
        self.name = name
        cmd = [
            sys.executable, "-m", "celery", "-A", "fer_site", "worker", "-Q", "cpu,gpu", "-c", "1",
            "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        super().__init__(cmd, env=env, log_path=log_path)

    def wait_ready(self, is_ready, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log(last=4000)}")
            if is_ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout} s:\n{self.log(last=4000)}")


@pytest.fixture
def start_worker(transactional_db, tmp_path, settings):
    """Start real Celery worker processes on this run's broker and test database; stopped at the end."""
    from curation.models import WorkerHeartbeat

    workers = []

    def start():
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="fer_site.settings.test",
            DATABASE_URL=worker_database_url(),
            FER_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            FER_DATA_DIR=str(settings.DATA_DIR),
        )
        w = WorkerProcess(env=env, log_path=tmp_path / f"worker-{len(workers)}.log", name=name)
        workers.append(w)
        prefix = name.split("@")[0] + "@"
        w.wait_ready(lambda: WorkerHeartbeat.objects.filter(name__startswith=prefix).exists())
        return w

    yield start
    for w in workers:
        w.stop()


def wait_for(predicate, *, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
