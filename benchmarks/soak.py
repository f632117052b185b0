"""Soak of the scaled shape (not a test; prints figures, exits non-zero on a server error or a broken audit trail).

Creates a PostgreSQL database of its own (fer_soak_<pid>) on the server DATABASE_URL names, migrates it, copies in
a scored dataset of --images rows (benchmarks.review_load's seeding) and --reviewers users with API tokens, then
starts gunicorn (--workers x --threads, gthread, DEBUG off) on a free loopback port and one Celery worker
(`-Q cpu,gpu -c 1`). R reviewer threads, each with its own token and keep-alive session, loop for --seconds:
claim (POST /api/review/next/), decide (POST /api/images/<id>/decision/ with the version claimed), now and then
undo (POST /api/review/undo/), log in for a new token (POST /api/auth/token/, chance --login per round) and
export the dataset (GET /api/datasets/<name>/export.csv, chance --export), then an exponential pause of mean
--pause. Midway the Celery worker is killed with SIGKILL and a new one started, and Redis (the broker and cache) is
shut down without saving and started again: at once, or after --redis-down-seconds, during which log-in and export
run on the database cache the Redis cache falls back to (curation/cache.py) and /healthz is asked once (503).
The log-in and export limits are raised (FER_THROTTLE_LOGIN / _EXPORT, unless set) so that one client address does
not meet them; their counts still go through the cache.

By default Redis is a private redis-server this benchmark starts on a free port (the development machine's Redis
is shared); --restart-redis uses and restarts the Redis CELERY_BROKER_URL names instead, with .ci/run's options.
At the end: per request kind the count, p50/p95/p99 latency, 5xx, 409 and other failures; then
`manage.py verify_labels --dataset NAME` and its verdict. Everything it started is stopped and its database dropped.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fer CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \\
        python -m benchmarks.soak --reviewers 20 --pause 1.0 --seconds 300 --images 2000 --workers 3
    ... python -m benchmarks.soak --seconds 90 --redis-down-seconds 30   # Redis away for 30 s in the middle
"""
import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks._django import setup

# Settings only: this process never queries a database. The soak's own database and Redis go to the processes it
# starts through their environment (seeding runs in one of them: --seed-into), and to the Celery app's broker_url.
setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections  # noqa: E402

from benchmarks.review_load import DECISIONS, _percentiles, _seed, _serve, _stop  # noqa: E402
from curation.models import Dataset  # noqa: E402
from curation.tokens import issue_token  # noqa: E402
from fer_site.celery import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
KINDS = ("claim", "decide", "undo", "login", "export")
PASSWORD = "soak-reviewer-password"


def _parse(argv):
    parser = argparse.ArgumentParser(description=(
        "Soak: R reviewers against gunicorn + a Celery worker on PostgreSQL and Redis, with the worker killed and "
        "Redis restarted midway; then verify_labels on the dataset."))
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.0, help="mean of each reviewer's exponential pause (s)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    # gthread holds each keep-alive connection on a thread (benchmarks.review_load): 3 x 8 >= 20 reviewers.
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--undo", type=float, default=0.1, help="chance that a reviewer undoes a decision")
    parser.add_argument("--login", type=float, default=0.03,
                        help="chance per round that a reviewer logs in for a new token (POST /api/auth/token/)")
    parser.add_argument("--export", type=float, default=0.03,
                        help="chance per round that a reviewer exports the dataset's CSV")
    parser.add_argument("--redis-down-seconds", type=float, default=0.0,
                        help="keep Redis stopped this long midway (default 0: start it again at once)")
    parser.add_argument("--restart-redis", action="store_true",
                        help="restart the Redis CELERY_BROKER_URL names (shared!) instead of a private one")
    parser.add_argument("--seed-into", metavar="DATASET", help=argparse.SUPPRESS)  # the soak's seeding process
    opts = vars(parser.parse_args(argv))
    for name in ("reviewers", "images", "workers", "threads"):
        if opts[name] < 1:
            raise SystemExit(f"--{name} must be at least 1 (got {opts[name]})")
    if opts["seconds"] <= 0 or opts["pause"] < 0 or not all(0 <= opts[k] <= 1 for k in ("undo", "login", "export")):
        raise SystemExit("--seconds must be positive, --pause at least 0 and --undo, --login and --export between 0 "
                         "and 1")
    if not 0 <= opts["redis_down_seconds"] < opts["seconds"] / 2:
        raise SystemExit(f"--redis-down-seconds must be at least 0 and less than half of --seconds (the outage starts "
                         f"midway): got {opts['redis_down_seconds']} with --seconds {opts['seconds']}")
    return opts


def _check_env():
    db_url = os.environ.get("DATABASE_URL", "")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if urlsplit(db_url).scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"benchmarks.soak needs PostgreSQL: DATABASE_URL is {db_url or 'unset'!r}; set it to "
                         f"postgres://user@host:port/db (the soak creates and drops a database of its own there)")
    if urlsplit(broker).scheme != "redis":
        raise SystemExit(f"benchmarks.soak needs Redis: CELERY_BROKER_URL is {broker or 'unset'!r}; set it to "
                         f"redis://host:port/N")
    return db_url, broker


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL: a database of its own ---------------------------------------------------------------------------
def _admin(db_url):
    import psycopg

    parts = urlsplit(db_url)
    return psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, user=parts.username,
                           password=parts.password, dbname="postgres", autocommit=True)


def _db_create(db_url, name):
    with _admin(db_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlsplit(db_url)._replace(path=f"/{name}").geturl()


def _db_drop(db_url, name):
    with _admin(db_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis ---------------------------------------------------------------------------------------------------------
class _Redis:
    """A Redis this benchmark restarts: a private one on a free port (started and stopped here), or the one the
    broker URL names (--restart-redis), started again with .ci/run's options."""

    def __init__(self, broker, private, folder):
        parts = urlsplit(broker)
        self.private = private
        self.folder = folder
        self.host = "127.0.0.1" if private else (parts.hostname or "127.0.0.1")
        if private:
            self.port = _free_port()
            self.url = f"redis://127.0.0.1:{self.port}{parts.path or '/0'}"
        else:
            self.port = parts.port or 6379
            self.url = broker
        self.proc = None

    def start(self):
        if self.private:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        else:
            Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
            Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
            subprocess.run([REDIS_SERVER, "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port",
                            str(self.port), "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                            "--logfile", "/var/log/redis/ci.log"], check=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise SystemExit(f"redis-server on port {self.port} did not answer within 20 s")

    def ping(self):
        done = subprocess.run([REDIS_CLI, "-h", self.host, "-p", str(self.port), "ping"], capture_output=True,
                              text=True, check=False)
        return done.stdout.strip() == "PONG"

    def shutdown(self):
        subprocess.run([REDIS_CLI, "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
                       capture_output=True, check=False)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        if self.private:
            self.shutdown()


# --- processes -----------------------------------------------------------------------------------------------------
def _worker(env, folder, n):
    with open(folder / f"celery-{n}.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fer_site", "worker", "-Q", "cpu,gpu", "-c", "1",
             "--prefetch-multiplier", "1", "-n", f"soak{n}-{os.getpid()}@%h", "--loglevel", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc, sig=signal.SIGKILL):
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _worker_wait(n, timeout=90.0):
    """Seconds until Celery worker number n answers a ping through the broker (retrying across a broker restart),
    or None if it does not within timeout."""
    name = f"soak{n}-{os.getpid()}@"
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if any(w.startswith(name) for reply in app.control.ping(timeout=1.0) for w in reply):
                return time.monotonic() - began
        except Exception:  # noqa: BLE001 - the broker is coming back: ask again
            time.sleep(0.5)
    return None


def _health(port):
    """/healthz's status and body, for the record."""
    import requests

    try:
        response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    except requests.RequestException as exc:
        return repr(exc)
    return f"{response.status_code} {response.text}"


def _after(seconds):
    return f"after {seconds:.1f} s" if seconds is not None else "NOT within 90 s"


# --- the reviewers -------------------------------------------------------------------------------------------------
class _Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat = {k: [] for k in KINDS}
        self.count = {k: {"5xx": 0, "409": 0, "other": 0} for k in KINDS}
        self.examples = []
        self.slowest = {k: (0.0, 0.0) for k in KINDS}  # (seconds, t)
        self.answered_at = {k: [] for k in KINDS}  # t of each answered (< 400) request
        self.empty = 0
        self.events = []  # (t, kind, what) of each failure, for the timeline around the kill and the restart

    def record(self, kind, seconds, status, body, t):
        with self.lock:
            if status is not None and status < 400:
                self.lat[kind].append(seconds)
                self.answered_at[kind].append(t)
                self.slowest[kind] = max(self.slowest[kind], (seconds, t))
                return
            what = "409" if status == 409 else "5xx" if status is not None and status >= 500 else "other"
            self.count[kind][what] += 1
            self.events.append((t, kind, status if status is not None else body))
            if what != "409" and len(self.examples) < 10:
                self.examples.append(f"{kind}: {status} {body[:200]!r}")


def _reviewers(base, tokens, dataset_name, opts, stats, began):
    import requests

    deadline = time.monotonic() + opts["seconds"]

    def call(session, kind, path, body, method="post"):
        t = time.perf_counter()
        try:
            if method == "get":
                response = session.get(base + path, timeout=30)
            else:
                response = session.post(base + path, json=body, timeout=30)
        except requests.RequestException as exc:
            stats.record(kind, time.perf_counter() - t, None, repr(exc), time.monotonic() - began)
            return None
        stats.record(kind, time.perf_counter() - t, response.status_code, response.text,
                     time.monotonic() - began)
        if response.status_code >= 400:
            return None
        if method == "get":
            return response.text
        try:
            return response.json()
        except ValueError:
            return None

    def pause(rng):
        if opts["pause"]:
            time.sleep(min(rng.expovariate(1 / opts["pause"]), max(0.0, deadline - time.monotonic())))

    def reviewer(index, token):
        rng = random.Random(index)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        time.sleep(rng.random() * opts["pause"])  # out of step from the start
        while time.monotonic() < deadline:
            data = call(session, "claim", "/api/review/next/", {"dataset": dataset_name})
            image = data.get("image") if data else None
            if data is not None and image is None:
                with stats.lock:
                    stats.empty += 1
            if image is not None:
                action = rng.choice(DECISIONS)
                body = {"action": action, "version": image["version"], "seconds_spent": 1.0}
                if action == "relabel":
                    body["label"] = rng.choice(["neutral", "sad", "anger"])
                decided = call(session, "decide", f"/api/images/{image['id']}/decision/", body)
                if decided is not None and rng.random() < opts["undo"]:
                    call(session, "undo", "/api/review/undo/", {})
            if rng.random() < opts["login"]:  # the token endpoint ignores the session's token
                call(session, "login", "/api/auth/token/", {"username": f"soak-{index}", "password": PASSWORD})
            if rng.random() < opts["export"]:
                call(session, "export", f"/api/datasets/{dataset_name}/export.csv", None, method="get")
            pause(rng)
        session.close()

    threads = [threading.Thread(target=reviewer, args=(i, t), daemon=True) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    return threads


def _report(stats, wall):
    print(f"{'request':8s} {'count':>7s} {'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'5xx':>5s} {'409':>5s} "
          f"{'other':>5s}  slowest")
    for kind in KINDS:
        c = stats.count[kind]
        p50, p95, p99 = _percentiles(stats.lat[kind])
        n = len(stats.lat[kind]) + sum(c.values())
        slow, at = stats.slowest[kind]
        print(f"{kind:8s} {n:7d} {p50:>7s} {p95:>7s} {p99:>7s} {c['5xx']:5d} {c['409']:5d} {c['other']:5d}  "
              f"{slow * 1000:.0f} ms at t={at:.1f} s")
    total = sum(len(v) for v in stats.lat.values()) + sum(sum(c.values()) for c in stats.count.values())
    print(f"{total} requests in {wall:.1f} s ({total / wall:.1f}/s); {stats.empty} claims found the queue empty; "
          f"latency over the answered (< 400) requests; 'other': other 4xx and transport failures")
    for example in stats.examples:
        print(f"  e.g. {example}")


def _seed_into(name, opts):
    """In the seeding process (its DATABASE_URL is the soak's database): the dataset and the reviewers; prints the
    PostgreSQL version, then their tokens, one per line."""
    dataset = Dataset.objects.create(name=name, format=Dataset.Format.CSV, source="bench_soak")
    _seed(dataset, opts["images"])
    User = get_user_model()
    tokens = [issue_token(User.objects.create_user(username=f"soak-{i}", password=PASSWORD))[1]
              for i in range(opts["reviewers"])]
    print(connection.cursor().connection.info.server_version)
    print("\n".join(tokens))


def main(argv=None):
    opts = _parse(argv)
    if opts["seed_into"]:
        return _seed_into(opts["seed_into"], opts)
    db_url, broker = _check_env()
    pid = os.getpid()
    db_name = f"fer_soak_{pid}"
    folder = Path(tempfile.mkdtemp(prefix=f"fer-soak-{pid}-"))
    redis = _Redis(broker, private=not opts["restart_redis"], folder=folder)
    server = worker = None
    created = False
    failed = []
    try:
        if redis.private:
            redis.start()
        elif not redis.ping():
            raise SystemExit(f"the Redis at {broker} does not answer")
        soak_db_url = _db_create(db_url, db_name)
        created = True
        env = {**os.environ, "DATABASE_URL": soak_db_url, "CELERY_BROKER_URL": redis.url,
               "FER_DATA_DIR": str(folder / "data"), "DJANGO_DEBUG": "false"}
        env.setdefault("DJANGO_SETTINGS_MODULE", "fer_site.settings.dev")
        env.setdefault("FER_DB_CONN_MAX_AGE", "60")  # docs/deploy.md: under gunicorn
        # The shared cache (FER_CACHE_URL, Redis beside the broker) keeps its keys apart from other users'.
        env.setdefault("FER_CACHE_KEY_PREFIX", f"soak-{pid}")
        # All reviewers come from one address: limits above what they send, still counted through the cache.
        env.setdefault("FER_THROTTLE_LOGIN", "100000/min")
        env.setdefault("FER_THROTTLE_EXPORT", "100000/min")
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "CELERY_BROKER_URL", "FER_DATA_DIR",
                                                "DJANGO_SETTINGS_MODULE", "FER_DB_CONN_MAX_AGE",
                                                "FER_CACHE_KEY_PREFIX", "FER_THROTTLE_LOGIN",
                                                "FER_THROTTLE_EXPORT")})
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        print(f"database {db_name} created and migrated in {time.perf_counter() - t0:.1f} s; "
              f"Redis {'private, port ' + str(redis.port) if redis.private else broker}")

        dataset_name = f"soak-{pid}"
        seeded = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--seed-into", dataset_name,
                                 "--images", str(opts["images"]), "--reviewers", str(opts["reviewers"])],
                                cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        version, *tokens = seeded.stdout.split()
        print(f"PostgreSQL {version}; {opts['images']:,} scored images, {opts['reviewers']} reviewers with tokens")
        app.conf.broker_url = redis.url  # this process's settings were read before the soak's Redis existed

        port = _free_port()
        server = _serve(port, opts)
        worker = _worker(env, folder, 0)
        print(f"gunicorn {opts['workers']} x {opts['threads']} (gthread) on 127.0.0.1:{port}; Celery worker "
              f"pid {worker.pid} answering: {_after(_worker_wait(0))}; {os.cpu_count()} CPUs")

        stats = _Stats()
        began = time.monotonic()
        threads = _reviewers(f"http://127.0.0.1:{port}", tokens, dataset_name, opts, stats, began)
        time.sleep(opts["seconds"] / 2)
        t_kill = time.monotonic() - began
        _kill(worker)
        print(f"t={t_kill:.1f} s: Celery worker killed (SIGKILL, exit {worker.returncode})")
        worker = _worker(env, folder, 1)
        t_redis = time.monotonic() - began
        redis.shutdown()
        down = time.perf_counter()
        if opts["redis_down_seconds"]:
            time.sleep(opts["redis_down_seconds"] / 2)
            print(f"t={time.monotonic() - began:.1f} s, Redis down: /healthz {_health(port)}")
            time.sleep(max(0.0, opts["redis_down_seconds"] - (time.perf_counter() - down)))
        redis.start()
        t_back = time.monotonic() - began
        print(f"t={t_redis:.1f} s: new worker pid {worker.pid}; Redis shut down (nosave) and up again after "
              f"{time.perf_counter() - down:.2f} s (t={t_back:.1f} s)")
        answered = _worker_wait(1)
        print(f"new worker answering a ping through the restarted Redis: {_after(answered)}")
        if answered is None:
            failed.append("the new Celery worker did not answer through the restarted Redis")
        for t in threads:
            t.join()
        wall = time.monotonic() - began
        _report(stats, wall)
        near = [e for e in stats.events if e[2] != 409 and t_kill - 1 <= e[0] <= t_back + 10]
        print(f"failures (not 409) from 1 s before the kill to 10 s after the Redis restart: {len(near)}")
        during = {k: sum(t_redis <= t <= t_back for t in stats.answered_at[k]) for k in KINDS}
        print(f"answered while Redis was down (t={t_redis:.1f}-{t_back:.1f} s): "
              + ", ".join(f"{n} {k}" for k, n in during.items()))
        if opts["redis_down_seconds"] and not (during["login"] and during["export"]):
            failed.append("no log-in or no export was answered while Redis was down")
        alive = worker.poll() is None
        print(f"Celery worker after the soak: {'running' if alive else f'exited {worker.returncode}'}")
        if not alive:
            failed.append("the restarted Celery worker exited")
        if sum(c["5xx"] for c in stats.count.values()):
            failed.append("server errors (5xx)")
        _stop(server)
        server = None

        done = subprocess.run([sys.executable, "manage.py", "verify_labels", "--dataset", dataset_name], cwd=ROOT,
                              env=env, capture_output=True, text=True, check=False)
        print(f"verify_labels --dataset {dataset_name}: exit {done.returncode}")
        print("  " + (done.stdout + done.stderr).strip().replace("\n", "\n  "))
        if done.returncode:
            failed.append("verify_labels")
    finally:
        if server is not None:
            _stop(server)
        _kill(worker, signal.SIGTERM)
        connections.close_all()
        if created:
            _db_drop(db_url, db_name)
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise SystemExit(f"soak FAILED: {', '.join(failed)}")
    print("soak passed: no 5xx, the audit trail agrees with every image")


if __name__ == "__main__":
    main()
