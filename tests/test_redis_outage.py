"""A Redis outage degrades, it does not break: a real web server (runserver, the test settings) with its broker and
cache on a Redis of the test's own (tests/private_redis.py), which the test kills and starts again. Log-in (token
endpoint and form) and the CSV export keep answering while Redis is down, the log-in limit holds through the outage
(the cache falls back to the database) and counts in Redis again once it is back; /healthz says which service is
down and answers 503 meanwhile. The shared Redis is never touched."""
import os
import re
import sys
import uuid

import pytest
import requests
from django.core.management import call_command

from curation.tokens import issue_token
from fer_site.settings.base import CACHE_TABLE, caches_from_url
from tests.conftest import Process, wait_for, worker_database_url
from tests.factories import DatasetFactory, ImageFactory, UserFactory
from tests.private_redis import REDIS_SERVER, PrivateRedis, free_port

pytestmark = pytest.mark.slow
LIMIT = 4


@pytest.fixture
def site(transactional_db, tmp_path, settings):
    """(base URL, the private Redis, the server's log path) with a reviewer "ann" (password "pw", a token) and a
    dataset "faces" of two images; everything stopped at the end."""
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {REDIS_SERVER} is missing")
        pytest.skip(f"no {REDIS_SERVER}")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    port = free_port()
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="fer_site.settings.test", DATABASE_URL=worker_database_url(),
               CELERY_BROKER_URL=f"redis://127.0.0.1:{redis.port}/8",
               FER_CACHE_URL=f"redis://127.0.0.1:{redis.port}/9", FER_DATA_DIR=str(settings.DATA_DIR),
               FER_MEDIA_ROOT=str(settings.MEDIA_ROOT), FER_THROTTLE_LOGIN=f"{LIMIT}/hour",
               FER_CACHE_RETRY_SECONDS="0", FER_CACHE_KEY_PREFIX=f"outage-{uuid.uuid4().hex[:12]}")
    log_path = tmp_path / "server.log"
    server = Process([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env=env,
                     log_path=log_path)
    # The database cache the Redis cache falls back to; `migrate` makes it (the test database has the tables of
    # the tests' own locmem cache: none).
    call_command("createcachetable", CACHE_TABLE, verbosity=0)
    ann = UserFactory(username="ann")
    token = issue_token(ann)[1]
    dataset = DatasetFactory(name="faces")
    ImageFactory.create_batch(2, dataset=dataset)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert server.alive(), server.log(last=3000)
        try:
            return requests.get(f"{base}/healthz", timeout=10).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=90, interval=0.2, what=f"runserver at {base}")
        yield base, redis, token, log_path
    finally:
        server.stop()
        redis.stop()


def _token(base, password):
    return requests.post(f"{base}/api/auth/token/", data={"username": "ann", "password": password}, timeout=30)


def _form_log_in(base, password):
    session = requests.Session()
    page = session.get(f"{base}/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(f"{base}/login/", data={"username": "ann", "password": password,
                                                 "csrfmiddlewaretoken": csrf}, allow_redirects=False, timeout=30)


def _export(base, token):
    return requests.get(f"{base}/api/datasets/faces/export.csv", headers={"Authorization": f"Token {token}"},
                        timeout=30)


def test_log_in_and_export_keep_working_while_redis_is_down_and_the_limit_holds(site):
    base, redis, token, log_path = site
    redis.kill()
    # While Redis is down: the right password gets a token, the form logs in, the export answers.
    answer = _token(base, "pw")
    assert answer.status_code == 200 and answer.json()["token"], answer.text[:2000]
    answer = _form_log_in(base, "pw")
    assert answer.status_code == 302, answer.text[:2000]
    answer = _export(base, token)
    assert answer.status_code == 200 and answer.text.startswith("path,"), answer.text[:2000]
    # The limit still counts (in the database): LIMIT attempts in all, then 429, on both ways in.
    assert [_token(base, "wrong").status_code for _ in range(LIMIT - 2)] == [400] * (LIMIT - 2)
    assert _token(base, "pw").status_code == 429
    assert _form_log_in(base, "pw").status_code == 429
    assert log_path.read_text().count("does not answer") == 1  # the switch is logged, once per process

    # Redis back (empty, as after a crash): the limit counts there again, from zero.
    redis.start()
    assert [_token(base, "wrong").status_code for _ in range(LIMIT)] == [400] * LIMIT
    assert _token(base, "pw").status_code == 429
    import redis as redis_py

    assert redis_py.Redis(port=redis.port, db=9).keys("*throttle_login*"), "the count is not in Redis"


def test_healthz_reports_database_broker_and_cache_and_answers_503_while_redis_is_down(site):
    base, redis, _, _ = site
    answer = requests.get(f"{base}/healthz", timeout=30)
    body = answer.json()
    assert answer.status_code == 200 and body["ok"] is True, body
    assert {name: body[name]["ok"] for name in ("database", "broker", "cache")} == \
        {"database": True, "broker": True, "cache": True}, body
    redis.kill()
    answer = requests.get(f"{base}/healthz", timeout=30)
    body = answer.json()
    assert answer.status_code == 503 and body["ok"] is False, body
    assert {name: body[name]["ok"] for name in ("database", "broker", "cache")} == \
        {"database": True, "broker": False, "cache": False}, body
    assert body["cache"]["fallback"] == {"ok": True, "kind": "database"}, body  # what log-in uses meanwhile
    assert str(redis.port) not in answer.text  # no internal address to anonymous callers
    redis.start()
    assert requests.get(f"{base}/healthz", timeout=30).status_code == 200


@pytest.fixture
def redis_cache(db, tmp_path, settings):
    """The settings' cache for a Redis of the test's own (the Redis cache and its database fallback), trying
    Redis on every call; (the cache, the Redis)."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"no {REDIS_SERVER}")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    caches = caches_from_url(redis.url)
    caches["default"]["OPTIONS"]["RETRY_AFTER_SECONDS"] = 0
    settings.CACHES = caches
    call_command("createcachetable", CACHE_TABLE, verbosity=0)
    from django.core.cache import cache

    yield cache, redis
    redis.stop()


def test_every_cache_operation_answers_from_the_database_while_redis_is_down(redis_cache):
    """What the limits and the run comparison's diffs use, and the rest of Django's cache API."""
    cache, redis = redis_cache
    diff = {"rows": [("a.png", "happy", "sad")] * 2000}
    cache.set("diff", diff)
    assert cache.get("diff") == diff  # in Redis
    redis.kill()
    assert cache.get("diff") is None  # a miss: computed again
    cache.set("diff", diff, timeout=60)
    assert cache.get("diff") == diff and cache.has_key("diff")
    assert cache.add("n", 1) and not cache.add("n", 5)
    assert cache.incr("n", 2) == 3 and cache.decr("n") == 2
    assert cache.get_or_set("g", lambda: "made") == "made" and cache.get("g") == "made"
    cache.set_many({"x": 1, "y": 2})
    assert cache.get_many(["x", "y", "z"]) == {"x": 1, "y": 2}
    assert cache.touch("x", 60)
    cache.delete_many(["x", "y"])
    assert cache.delete("g") and cache.get_many(["x", "y", "g"]) == {}
    redis.start()  # back, empty: answers from Redis again
    assert cache.get("n") is None
    cache.set("n", 7)
    assert cache.get("n") == 7
