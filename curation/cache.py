"""The shared cache when it is Redis: Django's RedisCache that falls back to the database cache while Redis does not
answer, so that a Redis outage turns no request into an error.

The default cache holds the log-in and export limits' counts (curation/api/throttles.py) and the run comparison's
cached diffs. With plain RedisCache an outage raised redis' ConnectionError out of every log-in and export (500).
Here a connection error or timeout sends that call, and every call of the next RETRY_AFTER_SECONDS in this process
(all its threads), to the cache named by FALLBACK (the settings make it the database cache, the table `fer_cache`
that `migrate` creates): the limits keep counting, in the database, for as long as Redis is away, and go back to
Redis once it answers. Falling back rather than failing open means an outage never lifts the log-in limit. Counts
do not move between the two: after a switch each limit starts from what that store holds (at most one window's
worth extra). A switch is logged once per process each way (a warning when Redis stops answering, info when it is
back).

OPTIONS of the backend (the rest go to redis-py's connection pool, as with RedisCache):
  FALLBACK             alias of the cache to use while Redis is down (default "fallback")
  RETRY_AFTER_SECONDS  how long a process uses the fallback before trying Redis again (default 5; 0: every call)
  socket_connect_timeout / socket_timeout  default 0.5 s / 1 s, so that an unreachable host costs a request at most
                       that, once per RETRY_AFTER_SECONDS.
"""
import logging
import threading
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# redis-py raises these when the server cannot be reached or does not answer in time (BusyLoadingError, a Redis
# still loading its data, is a ConnectionError). Anything else (a wrong command, a bad value) is a bug: it propagates.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


class _Outage:
    """Whether a Redis location is down, shared by the process's threads (Django makes a cache object per thread)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.down_since = None  # monotonic time Redis stopped answering this process; None while it answers
        self.retry_at = 0.0


_OUTAGES = {}
_OUTAGES_LOCK = threading.Lock()


def _outage(location):
    with _OUTAGES_LOCK:
        return _OUTAGES.setdefault(location, _Outage())


class FallbackRedisCache(RedisCache):
    def __init__(self, server, params):
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.fallback_alias = options.pop("FALLBACK", "fallback")
        self.retry_after = float(options.pop("RETRY_AFTER_SECONDS", 5))
        options.setdefault("socket_connect_timeout", 0.5)
        options.setdefault("socket_timeout", 1.0)
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._outage = _outage(",".join(self._servers))

    @property
    def fallback(self):
        return caches[self.fallback_alias]

    def ping(self):
        """Ask Redis itself (not the fallback) whether it answers; raises redis' errors if not. For /healthz."""
        return self._cache.get_client(write=True).ping()

    def _call(self, name, *args, **kwargs):
        outage = self._outage
        if outage.down_since is not None and time.monotonic() < outage.retry_at:
            return getattr(self.fallback, name)(*args, **kwargs)
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._went_down(exc)
            return getattr(self.fallback, name)(*args, **kwargs)
        if outage.down_since is not None:
            self._came_back()
        return result

    def _went_down(self, exc):
        outage = self._outage
        with outage.lock:
            outage.retry_at = time.monotonic() + self.retry_after
            if outage.down_since is None:
                outage.down_since = time.monotonic()
                log.warning("cache: Redis at %s does not answer (%s: %s); using the %r cache until it does",
                            ",".join(self._servers), type(exc).__name__, exc, self.fallback_alias)

    def _came_back(self):
        outage = self._outage
        with outage.lock:
            if outage.down_since is not None:
                log.info("cache: Redis at %s answers again after %.1f s; back from the %r cache",
                         ",".join(self._servers), time.monotonic() - outage.down_since, self.fallback_alias)
                outage.down_since = None

    # Every operation of RedisCache; BaseCache's others (get_or_set, decr, the async ones) are built on these.
    def add(self, *args, **kwargs):
        return self._call("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._call("set", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._call("touch", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args, **kwargs):
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args, **kwargs):
        return self._call("delete_many", *args, **kwargs)

    def clear(self):
        return self._call("clear")
