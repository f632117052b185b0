"""Load benchmark of the review queue (not a test; prints figures, asserts nothing).

Bulk-loads a scored throwaway dataset of N images into PostgreSQL (COPY), starts the app in a real server process
on loopback (gunicorn, gthread workers, DEBUG off), and runs R client threads, each a reviewer with its own token
and keep-alive connection, looping claim-next (POST /api/review/next/) then decision (POST
/api/images/<id>/decision/) until the request budget or the time limit is spent. Prints p50/p95/p99 latency per
request type and requests per second. In the same run, the database-only floor: the same services
(image_claim_next, image_decide) called in-process by R threads with their own connections, no HTTP, no server.
Each is measured twice in the same run, the random audit off (audit share 0) and then on (--audit-share), and in
the second the claims that served an audit card (curation/review/audit.py) are reported apart from the others: an
audit card must cost no more than an ordinary one.
The dataset, its audit rows, the users and their tokens are deleted at the end.

    python -m benchmarks.review_load --images 300000 --reviewers 20 --requests 6000
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

from benchmarks._django import setup

setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from curation.models import Dataset, Image, LabelChange, ReviewSkip, ReviewVote  # noqa: E402
from curation.review.services import image_claim_next, image_decide  # noqa: E402
from curation.tokens import issue_token, revoke_tokens  # noqa: E402

DECISIONS = ("confirm", "confirm", "confirm", "relabel", "exclude")  # most reviews confirm


def _percentiles(values):
    if not values:
        return "-", "-", "-"
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"{at(0.50):.1f}", f"{at(0.95):.1f}", f"{at(0.99):.1f}"


def _think(rng, opts, first=False):
    """A reviewer's pause between a decision and the next claim: uniform over 0.5-1.5 x --think-ms, and before the
    first claim uniform over 0-1 x, so that reviewers do not stay in step (which would send bursts of R requests)."""
    if opts["think_ms"]:
        time.sleep(opts["think_ms"] / 1000 * (rng.random() if first else rng.uniform(0.5, 1.5)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Budget:
    """Requests left to the reviewer threads of a phase, shared between them."""

    def __init__(self, requests):
        self.left = requests
        self._lock = threading.Lock()

    def take(self, n):
        """Take n requests if that many are left; False once the budget is spent."""
        with self._lock:
            if self.left < n:
                return False
            self.left -= n
            return True


def _run_reviewers(reviewer, identities, errors, what):
    """Run reviewer(index, identity) in a thread for each identity; returns the wall time, or exits with the first
    error the threads collected."""
    began = time.perf_counter()
    threads = [threading.Thread(target=reviewer, args=(i, x)) for i, x in enumerate(identities)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if errors:
        raise SystemExit(f"{len(errors)} {what} failed, first: {errors[0]}")
    return wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=(
        "Load benchmark: R reviewers claiming and deciding over HTTP against a real server on loopback, with the "
        "in-process database floor measured in the same run. PostgreSQL only."))
    parser.add_argument("--images", type=int, default=300_000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--requests", type=int, default=4000,
                        help="HTTP requests in all (claim + decision), and as many service calls for the floor")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit of each measured phase")
    # gthread keeps each keep-alive connection on one thread: with fewer threads in all than reviewers, requests
    # queue behind idle connections (2 x 4 gave 127 requests/s and a 480 ms p95 where 4 x 5 gave 193 and 216).
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=5, help="threads per gunicorn worker")
    parser.add_argument("--audit-share", type=float, default=0.05,
                        help="the random audit's share in the phases with the audit on (0-0.5)")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="mean pause of each reviewer between a decision and its next claim (uniform over "
                             "0.5-1.5 x); 0: a closed loop, every reviewer as fast as the server answers")
    opts = vars(parser.parse_args(argv))
    if connection.vendor != "postgresql":
        raise SystemExit(
            f"benchmarks.review_load needs PostgreSQL (this database is {connection.vendor}): set DATABASE_URL="
            f"postgres://... . SQLite serialises every write, so it would measure its lock, not the queue.")
    for name in ("images", "reviewers", "requests", "workers", "threads"):
        if opts[name] < 1:
            raise SystemExit(f"--{name} must be at least 1 (got {opts[name]})")
    tag = uuid.uuid4().hex[:8]
    User = get_user_model()
    if not 0 < opts["audit_share"] <= 0.5:
        raise SystemExit(f"--audit-share must be above 0 and at most 0.5 (got {opts['audit_share']})")
    dataset = Dataset.objects.create(name=f"bench-review-{tag}", format=Dataset.Format.CSV, source="bench_review",
                                     audit_share=0.0)
    users = []
    server = None
    try:
        t0 = time.perf_counter()
        _seed(dataset, opts["images"])
        print(f"database: PostgreSQL {connection.cursor().connection.info.server_version} "
              f"({connection.settings_dict['NAME']}); seeded {opts['images']:,} scored images "
              f"in {time.perf_counter() - t0:.1f} s")
        users = [User.objects.create_user(username=f"bench-review-{tag}-{i}") for i in range(opts["reviewers"])]
        tokens = [issue_token(u)[1] for u in users]
        port = _free_port()
        server = _serve(port, opts)
        print(f"server: gunicorn, {opts['workers']} workers x {opts['threads']} threads "
              f"(gthread) on 127.0.0.1:{port}; {os.cpu_count()} CPUs; client think time "
              f"{opts['think_ms']:.0f} ms")
        _http_phase(port, tokens, dataset, opts, warmup=True)
        results = {}
        # Audit off then on, each over HTTP and then in-process (the server keeps running: it reads the share
        # with the dataset on every claim).
        for audit in (0.0, opts["audit_share"]):
            Dataset.objects.filter(pk=dataset.pk).update(audit_share=audit)
            results[("HTTP", audit)] = _http_phase(port, tokens, dataset, opts)
            results[("floor: services in-process", audit)] = _floor_phase(users, dataset, opts)
        _stop(server)
        server = None
        _report(results, dataset, opts)
    finally:
        if server is not None:
            _stop(server)
        _clean(dataset, users)


# --- set-up -----------------------------------------------------------------------------------------------------
def _seed(dataset, n):
    """COPY n rows: scored (suspicion for 90 %, the rest unscored, as after a partial scoring run)."""
    rng = random.Random(0)
    now = timezone.now()
    cols = ("dataset_id", "path", "file", "content_hash", "width", "height", "split", "original_label", "label",
            "status", "version", "suspicion", "ambiguity", "flagged", "classifier_flagged", "disputed",
            "created_at", "updated_at", "datalab_label_issue", "datalab_outlier", "datalab_near_duplicates",
            "audit_key", "audit")
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {Image._meta.db_table} ({', '.join(cols)}) FROM STDIN") as copy:
            for i in range(n):
                label = rng.randrange(8)
                scored = rng.random() < 0.9
                copy.write_row((
                    dataset.pk, f"{label}/img_{i:07d}.png", f"datasets/bench/{i}.png", f"{dataset.pk:08x}{i:056x}",
                    96, 96, "train" if rng.random() < 0.75 else "val", label, label, "unreviewed", 1,
                    rng.random() if scored else None, rng.random() if scored else None,
                    scored and rng.random() < 0.1, scored and rng.random() < 0.1, False, now, now, False, False, "[]",
                    rng.random(), False,
                ))
        cursor.execute(f"ANALYZE {Image._meta.db_table}")


def _serve(port, opts):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE, "DJANGO_DEBUG": "false"}
    cmd = [sys.executable, "-m", "gunicorn", "fer_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(opts["workers"]), "--threads", str(opts["threads"]), "--worker-class", "gthread",
           "--keep-alive", "30", "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    _stop(server)
    raise SystemExit("the server did not answer /healthz within 60 s")


def _stop(server):
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


# --- phases -----------------------------------------------------------------------------------------------------
def _http_phase(port, tokens, dataset, opts, warmup=False):
    """Each reviewer loops claim + decision over its own keep-alive connection. The warm-up does 2 loops each
    (connections, worker imports, caches) and is not reported."""
    take = _Budget(len(tokens) * 4 if warmup else opts["requests"]).take
    lat = {"claim": [], "decision": []}
    claimed = []  # (seconds, image id) of each claim that served a card
    errors = []
    deadline = time.monotonic() + opts["seconds"]
    start = threading.Barrier(len(tokens))

    def reviewer(index, token):
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

        def post(path, body):
            t = time.perf_counter()
            conn.request("POST", path, body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            data = response.read()
            return time.perf_counter() - t, response.status, data

        try:
            start.wait(timeout=30)
            _think(rng, opts, first=True)
            while time.monotonic() < deadline and take(2):
                seconds, status, data = post("/api/review/next/", {"dataset": dataset.name})
                if status != 200:
                    raise RuntimeError(f"claim answered {status}: {data[:200]!r}")
                image = json.loads(data)["image"]
                lat["claim"].append(seconds)
                if image is None:
                    break
                claimed.append((seconds, image["id"]))
                action = rng.choice(DECISIONS)
                body = {"action": action, "version": image["version"], "seconds_spent": 1.0}
                if action == "relabel":
                    body["label"] = rng.choice(["neutral", "sad", "anger"])
                seconds, status, data = post(f"/api/images/{image['id']}/decision/", body)
                if status not in (200, 409):
                    raise RuntimeError(f"decision answered {status}: {data[:200]!r}")
                lat["decision"].append(seconds)
                _think(rng, opts)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            conn.close()

    return {"lat": lat, "claimed": claimed, "wall": _run_reviewers(reviewer, tokens, errors, "reviewer(s)")}


def _floor_phase(users, dataset, opts):
    """The same services in-process: no HTTP, no serialisation, no server; each thread its own connection."""
    take = _Budget(opts["requests"]).take
    lat = {"claim": [], "decision": []}
    claimed = []
    errors = []
    current = Dataset.objects.get(pk=dataset.pk)  # with this phase's audit share
    deadline = time.monotonic() + opts["seconds"]
    start = threading.Barrier(len(users))

    def reviewer(index, user):
        rng = random.Random(1000 + index)
        try:
            start.wait(timeout=30)
            _think(rng, opts, first=True)
            while time.monotonic() < deadline and take(2):
                t = time.perf_counter()
                image = image_claim_next(user=user, dataset=current)
                lat["claim"].append(time.perf_counter() - t)
                if image is None:
                    break
                claimed.append((lat["claim"][-1], image.pk))
                action = rng.choice(DECISIONS)
                t = time.perf_counter()
                try:
                    image_decide(user=user, image_id=image.pk, action=action, version=image.version,
                                 label=rng.choice((0, 2, 6)) if action == "relabel" else None, seconds_spent=1.0)
                except Exception as exc:  # noqa: BLE001
                    if exc.__class__.__name__ != "VersionConflict":
                        raise
                lat["decision"].append(time.perf_counter() - t)
                _think(rng, opts)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    return {"lat": lat, "claimed": claimed, "wall": _run_reviewers(reviewer, users, errors, "floor thread(s)")}


def _report(results, dataset, opts):
    audited = set(Image.objects.filter(dataset=dataset, audit=True).values_list("pk", flat=True))
    print(f"{'phase':50s} {'requests':>8s} {'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'req/s':>7s}")
    for (name, audit), result in results.items():
        label = f"{name}, audit {'off' if not audit else f'{audit:g}'}"
        total = sum(len(v) for v in result["lat"].values())
        for kind, values in result["lat"].items():
            p50, p95, p99 = _percentiles(values)
            print(f"{label + ' ' + kind:50s} {len(values):8d} {p50:>7s} {p95:>7s} {p99:>7s}")
        if audit:
            for card, pick in (("ordinary cards", False), ("audit cards", True)):
                values = [seconds for seconds, pk in result["claimed"] if (pk in audited) == pick]
                p50, p95, p99 = _percentiles(values)
                print(f"{label + ' claim, ' + card:50s} {len(values):8d} {p50:>7s} {p95:>7s} {p99:>7s}")
        p50, p95, p99 = _percentiles([x for v in result["lat"].values() for x in v])
        print(f"{label + ' all':50s} {total:8d} {p50:>7s} {p95:>7s} {p99:>7s} {total / result['wall']:7.0f}")
    http = [x for (name, _), r in results.items() if name == "HTTP" for v in r["lat"].values() for x in v]
    print(f"{opts['reviewers']} reviewers, {opts['think_ms']:.0f} ms mean think time; "
          f"HTTP mean {statistics.mean(http) * 1000:.1f} ms; the clients run on the same machine as the server; "
          f"phases in the order listed, on one dataset ({len(audited)} audit cards served in all).")


def _clean(dataset, users):
    table = Image._meta.db_table
    with connection.cursor() as cursor:  # raw deletes: the ORM's cascade would load every row first
        for model in (LabelChange, ReviewSkip, ReviewVote):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE image_id IN "
                           f"(SELECT id FROM {table} WHERE dataset_id = %s)", [dataset.pk])
        cursor.execute(f"DELETE FROM {table} WHERE dataset_id = %s", [dataset.pk])
    dataset.delete()
    for user in users:
        revoke_tokens(user)
        user.delete()


if __name__ == "__main__":
    main()
