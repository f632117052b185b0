"""The embedded default end to end, in separate processes as a user runs it: SQLite (WAL) and the filesystem broker,
`manage.py` commands and a `celery worker`, with no DATABASE_URL or CELERY_BROKER_URL set."""
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.management.commands.demo import QUICK
from tests.conftest import REPO, WorkerProcess, wait_for
from tests.images import write_imagefolder

pytestmark = [pytest.mark.worker, pytest.mark.slow]


@pytest.fixture
def embedded(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="fer_site.settings.dev",
        FER_DATA_DIR=str(tmp_path / "data"),
        FER_JOB_HEARTBEAT_SECONDS="0.5",
        FER_JOB_STALE_AFTER_SECONDS="8",
        FER_JOB_REAP_INTERVAL_SECONDS="1",
        FER_WORKER_SEEN_WITHIN_SECONDS="6",
    )
    db = tmp_path / "data" / "db.sqlite3"
    workers = []

    def manage(*args, timeout=300):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)

    def query(sql, *params):
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def start_worker():
        w = WorkerProcess(env=env, log_path=tmp_path / f"worker-{len(workers)}.log", name=f"emb{len(workers)}@%h")
        workers.append(w)
        w.wait_ready(lambda: query("SELECT count(*) FROM curation_workerheartbeat WHERE name LIKE ?",
                                   f"emb{len(workers) - 1}@%")[0][0] > 0)
        return w

    migrate = manage("migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    assert query("PRAGMA journal_mode")[0][0] == "wal"
    yield manage, query, start_worker
    for w in workers:
        w.stop()


def test_embedded_import_through_worker(embedded, tmp_path):
    manage, query, start_worker = embedded
    n = write_imagefolder(tmp_path / "faces", {"happy": 10, "sad": 10, "fear": 10})
    start_worker()
    done = manage("import_dataset", str(tmp_path / "faces"), "--format", "imagefolder", "--name", "faces")
    assert done.returncode == 0, done.stderr
    assert f"added:              {n}" in done.stdout
    assert query("SELECT count(*) FROM curation_image")[0][0] == n
    assert query("SELECT status, attempts FROM curation_job") == [("succeeded", 1)]


def test_embedded_worker_killed_mid_job_reruns_it_once(embedded, tmp_path):
    manage, query, start_worker = embedded
    total = write_imagefolder(tmp_path / "faces", {"happy": 1200, "sad": 1200}, size=48)
    first = start_worker()
    queued = manage("import_dataset", str(tmp_path / "faces"), "--format", "imagefolder", "--name", "big", "--no-wait")
    assert queued.returncode == 0, queued.stderr
    job_id = int(queued.stdout.strip())
    wait_for(lambda: query("SELECT count(*) FROM curation_image")[0][0] >= 128, timeout=120, what="first batches")
    first.kill()
    assert query("SELECT status FROM curation_job WHERE id = ?", job_id) == [("running",)]
    assert query("SELECT count(*) FROM curation_image")[0][0] < total, "the job ended before the kill"

    second = start_worker()
    wait_for(lambda: query("SELECT status FROM curation_job WHERE id = ?", job_id)[0][0] == "succeeded",
             timeout=180, interval=0.3, what="the re-run")
    assert query("SELECT attempts FROM curation_job WHERE id = ?", job_id) == [(2,)]
    assert query("SELECT count(*), count(DISTINCT path) FROM curation_image") == [(total, total)]
    assert "attempt 2 ended: succeeded" in second.log()
    assert "ended:" not in first.log()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(1500)
def test_demo_serves_the_site_with_a_worker_and_stops_on_ctrl_c(tmp_path):
    """`make demo` runs `manage.py demo`: it must serve the site, import the demo data on its worker, print a
    login, and stop both processes on Ctrl-C."""
    import re
    import signal
    import urllib.request
    from http.cookiejar import CookieJar
    from urllib.parse import urlencode

    port = _free_port()
    # The demo as a user runs it: none of the test settings' short job timings.
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL"} and not k.startswith("FER_")}
    env.update(DJANGO_SETTINGS_MODULE="fer_site.settings.dev", FER_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "demo.log", "w+")
    # --quick: the same pipeline, processes and banner on a quarter of the faces (the full demo's figures are
    # measured by hand: docs/results.md).
    demo = subprocess.Popen([sys.executable, "manage.py", "demo", "--quick", "--addr", f"127.0.0.1:{port}"], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def health():
            try:
                return json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=2).read())
            except OSError:
                return None

        wait_for(lambda: (health() or {}).get("workers") == 1, timeout=120, interval=0.5, what="web server and worker")
        db = tmp_path / "data" / "db.sqlite3"
        started = time.monotonic()

        def stages():
            try:
                with sqlite3.connect(db, timeout=30) as conn:
                    # The demo's stages; score_ambiguity's chunk jobs are part of its stage.
                    return conn.execute("SELECT kind, status FROM curation_job WHERE kind != 'score_chunk' "
                                        "ORDER BY id").fetchall()
            except sqlite3.OperationalError:  # the worker is writing; ask again
                return []

        # The whole demo pipeline: import, classifier with out-of-fold probabilities, a CycleGAN pair, scores, map.
        wait_for(lambda: len(stages()) == 5 and {s for _, s in stages()} == {"succeeded"} or
                 any(s in ("failed", "cancelled") for _, s in stages()), timeout=1200, interval=2, what="the demo pipeline")
        assert stages() == [("import_dataset", "succeeded"), ("train_classifier", "succeeded"),
                            ("train_cyclegan", "succeeded"), ("score_ambiguity", "succeeded"),
                            ("map_dataset", "succeeded")]
        print(f"demo pipeline ready after {time.monotonic() - started:.0f} s")
        unranked = sqlite3.connect(db, timeout=30).execute(
            "SELECT count(*) FROM curation_image WHERE split = 'train' AND suspicion IS NULL").fetchone()[0]
        assert unranked == 0

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = opener.open(f"{base}/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        # The address and logins come last, once the queue is ready, after the stages' progress bars.
        wait_for(lambda: "curator login: curator / curator" in (tmp_path / "demo.log").read_text(), timeout=30,
                 what="the ready banner")
        text = (tmp_path / "demo.log").read_text()
        assert "[4/5] score the queue" in text and "[5/5] map the dataset" in text and "100.0% succeeded" in text
        banner = text[text.index("The demo is ready."):]
        assert "reviewer login: reviewer / reviewer" in banner and f"http://127.0.0.1:{port}/" in banner
        assert "known truth: " in banner  # its truth.csv is registered: tests/curation/test_truth.py
        assert (tmp_path / "data" / "truth" / "demo.csv").exists()
        home = opener.open(f"{base}/login/", data=urlencode(
            {"username": "reviewer", "password": "reviewer", "csrfmiddlewaretoken": token, "next": "/"}).encode()).read().decode()
        # the quick demo's synthetic faces, imported from their labels.csv
        assert "<td>demo</td>" in home and "<td>csv</td>" in home and f"<td>{QUICK['faces']['n']}</td>" in home
        # demo, web server, worker and its pool child
        assert len(_processes_with_env(f"FER_DATA_DIR={tmp_path / 'data'}".encode())) >= 4
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    assert demo.returncode == 0
    wait_for(lambda: health() is None, timeout=30, what="the web server to stop")
    marker = f"FER_DATA_DIR={tmp_path / 'data'}".encode()
    wait_for(lambda: not _processes_with_env(marker), timeout=30, what="the worker and web server to exit")


def _processes_with_env(marker):
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found
