"""Ten reviewers racing over HTTP against `manage.py runserver` on PostgreSQL, configured as the README says (a
DATABASE_URL and nothing else). The development server runs each request on a new thread; with persistent
connections each thread left its connection open, and PostgreSQL refused new clients within seconds (HTTP 500,
"too many clients already"). On SQLite there is no server to exhaust: skipped, except on CI where it must run."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from curation.tokens import issue_token
from tests.conftest import REPO, wait_for, worker_database_url
from tests.factories import DatasetFactory, ImageFactory, UserFactory

REVIEWERS = 10
RACE_SECONDS = 8
# Ten reviewers need about ten connections at once (plus the server's own); a leak passes this within seconds.
MAX_CONNECTIONS = 25


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, token, payload):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Authorization": f"Token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def _connections(dbname):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname])
        return cursor.fetchone()[0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ten_reviewers_over_http_on_runserver_do_not_exhaust_postgresql(tmp_path, settings):
    if connection.vendor != "postgresql":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("on CI this test must run on PostgreSQL")
        pytest.skip("runs on PostgreSQL (DATABASE_URL=postgres://...); SQLite has no connection limit to exhaust")
    dbname = connection.settings_dict["NAME"]
    ds = DatasetFactory(name="http-race")
    for i in range(400):
        ImageFactory(dataset=ds, suspicion=(i * 7919 % 400) / 400)
    tokens = [issue_token(UserFactory(username=f"h{i}"))[1] for i in range(REVIEWERS)]

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "FER_DB_CONN_MAX_AGE"}  # the documented default
    env.update(DJANGO_SETTINGS_MODULE="fer_site.settings.test", DATABASE_URL=worker_database_url(),
               FER_DATA_DIR=str(settings.DATA_DIR), FER_MEDIA_ROOT=str(settings.MEDIA_ROOT))
    log = open(tmp_path / "runserver.log", "w")
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api"
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                assert server.poll() is None, (tmp_path / "runserver.log").read_text()[-3000:]
                return False

        wait_for(up, timeout=60, interval=0.2, what="runserver to listen")
        failures, decided, held, lock = [], [], {}, threading.Lock()
        peak = [0]
        stop = threading.Event()
        start = threading.Barrier(REVIEWERS)

        def review(token):
            start.wait(timeout=30)
            deadline = time.monotonic() + RACE_SECONDS
            while time.monotonic() < deadline:
                status, body = _post(f"{base}/review/next/", token, {"dataset": ds.name})
                if status != 200:
                    failures.append(("next", status, body))
                    continue
                image = body["image"]
                if image is None:
                    return
                with lock:
                    if held.get(image["id"]) not in (None, token):
                        failures.append(("handed to two reviewers", image["id"]))
                    held[image["id"]] = token
                status, body = _post(f"{base}/images/{image['id']}/decision/", token,
                                     {"action": "confirm", "version": image["version"]})
                if status != 200:
                    failures.append(("decision", status, body))
                else:
                    decided.append(image["id"])

        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], _connections(dbname))
                time.sleep(0.1)
            connection.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=review, args=(t,)) for t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=RACE_SECONDS + 120)
        stop.set()
        watcher.join()
        assert not any(t.is_alive() for t in threads), "reviewers still running at the time limit"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    server_errors = [f for f in failures if len(f) > 2 and isinstance(f[1], int) and f[1] >= 500]
    assert not server_errors, f"{len(server_errors)} server errors, first: {server_errors[:3]}"
    assert not failures, failures[:5]
    assert decided and len(decided) == len(set(decided)), "an image was decided twice"
    assert peak[0] <= MAX_CONNECTIONS, f"{peak[0]} connections to {dbname} at the peak: connections leak"
