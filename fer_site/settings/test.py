"""Tests: the development settings with their own data folder and short job timings, so that a killed worker is
noticed in seconds. Worker processes started by tests use this module too."""
import os
import uuid
from pathlib import Path

os.environ.setdefault("FER_DATA_DIR", str(Path(__file__).resolve().parents[2] / "var" / "test"))
os.environ.setdefault("FER_JOB_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("FER_JOB_STALE_AFTER_SECONDS", "8")  # a loaded 2-core machine can stall a thread for seconds
os.environ.setdefault("FER_JOB_REAP_INTERVAL_SECONDS", "1")
os.environ.setdefault("FER_WORKER_SEEN_WITHIN_SECONDS", "6")
# Each test process counts its rate limits alone (tests clear the cache between tests, some without a database);
# tests/test_shared_limits.py starts servers on the shared caches. A cache set by FER_CACHE_URL outlives a run: a
# key prefix per run, which the processes a test starts inherit, keeps a previous run's entries out of this one.
os.environ.setdefault("FER_CACHE_URL", "locmem://")
os.environ.setdefault("FER_CACHE_KEY_PREFIX", f"test-{uuid.uuid4().hex[:12]}")

from fer_site.settings.dev import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
