"""Rate limits hold across web processes: two real `manage.py runserver` processes on one database and one cache,
with log-in attempts spread over both, refuse attempts past the global limit, not past twice it. The counts live in
the default cache, which the settings make shared (Redis beside a Redis broker, else the database); a per-process
cache (locmem://) lets each process count alone, which the last case shows."""
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from fer_site.settings.base import CACHE_TABLE, cache_from_url, cache_url_default, caches_from_url
from tests.conftest import REPO, wait_for, worker_database_url

LIMIT = 5
ATTEMPTS = 4 * LIMIT


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url, data=None):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _redis_url():
    import redis

    url = cache_url_default(os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
    if not url.startswith("redis://"):
        url = "redis://127.0.0.1:6379/1"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Redis is unreachable at {url}: {exc}")
        pytest.skip(f"no Redis at {url}: {exc}")
    return url


@pytest.fixture
def two_servers(transactional_db, tmp_path, settings):
    """Start two runserver processes with the given FER_CACHE_URL (None: the settings' default, which follows
    CELERY_BROKER_URL: the database here, Redis on CI) and a key prefix of their own, so earlier cases' counts do
    not carry over; stopped at the end."""
    servers = []

    def start(cache_url):
        env = dict(os.environ)
        env.pop("FER_CACHE_URL", None)  # the test settings' locmem://: the servers run the product's settings
        env.update(DJANGO_SETTINGS_MODULE="fer_site.settings.dev", DATABASE_URL=worker_database_url(),
                   FER_DATA_DIR=str(settings.DATA_DIR), FER_MEDIA_ROOT=str(settings.MEDIA_ROOT),
                   FER_THROTTLE_LOGIN=f"{LIMIT}/hour", FER_CACHE_KEY_PREFIX=f"limits-{uuid.uuid4().hex[:12]}")
        if cache_url:
            env["FER_CACHE_URL"] = cache_url
        # The test database has the tables of the tests' own cache (locmem: none); migrate would have made this.
        call_command("createcachetable", CACHE_TABLE, verbosity=0)
        urls = []
        for n in range(2):
            port = _free_port()
            log = open(tmp_path / f"server-{len(servers)}.log", "w")
            proc = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            servers.append((proc, log))
            urls.append(f"http://127.0.0.1:{port}")
        for url, (proc, log) in zip(urls, servers[-2:]):
            def up(url=url, proc=proc, log=log):
                assert proc.poll() is None, open(log.name).read()[-3000:]
                return _status(f"{url}/healthz") == 200
            wait_for(up, timeout=90, interval=0.2, what=f"runserver at {url}")
        return urls

    yield start
    for proc, log in servers:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _spread_log_in_attempts(urls):
    """Wrong passwords at the token endpoint, alternating between the servers: per server, the answers in order."""
    answers = {url: [] for url in urls}
    for i in range(ATTEMPTS):
        url = urls[i % len(urls)]
        answers[url].append(_status(f"{url}/api/auth/token/", b"username=nobody&password=wrong"))
    return answers


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["default", "db://", "redis"])
def test_log_in_attempts_over_two_processes_stop_at_the_global_limit(two_servers, cache):
    cache_url = {"default": None, "redis": None}.get(cache, cache)
    if cache == "redis":
        cache_url = _redis_url()
    urls = two_servers(cache_url)
    answers = _spread_log_in_attempts(urls)
    every = [a for url in urls for a in answers[url]]
    assert set(every) <= {400, 429}, answers
    assert every.count(400) == LIMIT, f"{every.count(400)} attempts allowed over two processes, limit {LIMIT}: {answers}"
    for url in urls:  # once the shared count is spent, each process refuses
        assert answers[url][-1] == 429


@pytest.mark.slow
def test_a_per_process_cache_would_allow_the_limit_once_per_process(two_servers):
    """Why the cache must be shared: the same requests with each process counting alone pass twice the limit."""
    urls = two_servers("locmem://")
    answers = _spread_log_in_attempts(urls)
    assert sum(a == 400 for url in urls for a in answers[url]) == 2 * LIMIT, answers


def test_the_default_cache_follows_the_broker():
    assert cache_url_default("filesystem://") == "db://"
    assert cache_url_default("redis://redis-host:6379/0") == "redis://redis-host:6379/1"
    assert cache_url_default("redis://:pw@redis-host:6379") == "redis://:pw@redis-host:6379/1"
    assert cache_url_default("redis://127.0.0.1:6379/15") == "redis://127.0.0.1:6379/14"  # never the broker's
    assert cache_from_url("db://")["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    assert cache_from_url("redis://h:6379/2")["BACKEND"] == "curation.cache.FallbackRedisCache"
    assert caches_from_url("redis://h:6379/2")["fallback"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    assert set(caches_from_url("db://")) == {"default"}


def test_an_unknown_cache_url_is_refused_naming_the_setting():
    with pytest.raises(ImproperlyConfigured, match="FER_CACHE_URL='memcached://h' is not a cache"):
        cache_from_url("memcached://h")
    with pytest.raises(ImproperlyConfigured, match="Redis database number 'x'"):
        cache_url_default("redis://h:6379/x")


def test_migrate_alone_creates_the_cache_table(tmp_path):
    """A fresh SQLite database: `manage.py migrate` and nothing else, then the database cache works."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="fer_site.settings.dev", FER_CACHE_URL="db://",
               DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}", FER_DATA_DIR=str(tmp_path))

    def run(*argv):
        return subprocess.run([sys.executable, "manage.py", *argv], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    done = run("migrate", "-v0")
    assert done.returncode == 0, done.stderr
    done = run("shell", "-c", "from django.core.cache import cache; cache.set('k', 41); print(cache.get('k') + 1)")
    assert done.returncode == 0 and done.stdout.strip().endswith("42"), done.stdout + done.stderr
