"""What /healthz checks: the database, the broker and the cache, each on its own, each cheap (a query, a PING with
short socket timeouts, a look at the broker's folders), since compose polls it every 10 s.

Each check returns {"ok": bool, "kind": ...}; a failed one adds "error" with the exception's class only (the
endpoint answers anonymous callers, so no host names or paths), and its full text goes to the log.
"""
import contextlib
import logging
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import kombu
import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection, transaction

from curation.cache import FallbackRedisCache

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 1.0


def _failed(what, kind, exc):
    log.warning("healthz: %s (%s) is down: %s: %s", what, kind, type(exc).__name__, exc)
    return {"ok": False, "kind": kind, "error": type(exc).__name__}


def check_database():
    kind = connection.vendor
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is "down", reported, not raised
        return _failed("database", kind, exc)
    return {"ok": True, "kind": kind}


def _broker_folders_usable():
    """The filesystem broker's folders exist and this process may write them (where messages are written, read
    and moved to)."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        folder = options.get(key)
        if folder and not (Path(folder).is_dir() and os.access(folder, os.W_OK | os.X_OK)):
            raise FileNotFoundError(f"broker folder {key}={folder} is missing or not writable")


def check_broker():
    url = settings.CELERY_BROKER_URL
    kind = urlsplit(url).scheme or url
    try:
        if kind in {"redis", "rediss"}:
            client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
            try:
                client.ping()
            finally:
                client.close()
        elif kind == "filesystem":
            _broker_folders_usable()
        else:
            with kombu.Connection(url, connect_timeout=TIMEOUT_SECONDS) as conn:
                conn.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001
        return _failed("broker", kind, exc)
    return {"ok": True, "kind": kind}


def _answers(cache):
    """The cache answers: a database cache's table is there (a read: no write lock, which on SQLite would queue
    behind a long write); any other cache takes a short-lived key and returns it."""
    key = f"healthz-{os.getpid()}"
    if isinstance(cache, DatabaseCache):
        # Inside a transaction (tests), a failed query must not spoil it on PostgreSQL: a savepoint of its own.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            cache.has_key(key)
        return
    value = uuid.uuid4().hex
    cache.set(key, value, timeout=60)
    if cache.get(key) != value:
        raise LookupError("the cache did not return what was just written")


def _kind(cache):
    name = type(cache).__name__
    return {"FallbackRedisCache": "redis", "RedisCache": "redis", "DatabaseCache": "database",
            "LocMemCache": "locmem"}.get(name, name)


def check_cache():
    cache = caches["default"]
    kind = _kind(cache)
    if isinstance(cache, FallbackRedisCache):
        # Redis itself, not through the fallback (which would hide the outage); and the fallback, which log-in and
        # export use meanwhile.
        fallback = caches[cache.fallback_alias]
        try:
            _answers(fallback)
            fallback_state = {"ok": True, "kind": _kind(fallback)}
        except Exception as exc:  # noqa: BLE001
            fallback_state = _failed("fallback cache", _kind(fallback), exc)
        try:
            cache.ping()
        except Exception as exc:  # noqa: BLE001
            return {**_failed("cache", kind, exc), "fallback": fallback_state}
        return {"ok": fallback_state["ok"], "kind": kind, "fallback": fallback_state}
    try:
        _answers(cache)
    except Exception as exc:  # noqa: BLE001
        return _failed("cache", kind, exc)
    return {"ok": True, "kind": kind}


def health():
    """{"ok": all three up, "database": ..., "broker": ..., "cache": ...}."""
    checks = {"database": check_database(), "broker": check_broker(), "cache": check_cache()}
    return {"ok": all(c["ok"] for c in checks.values()), **checks}
