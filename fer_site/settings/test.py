"""Tests: the development settings with their own data folder and short job timings, so that a killed worker is
noticed in seconds. Worker processes started by tests use this module too."""
import os
from pathlib import Path

os.environ.setdefault("FER_DATA_DIR", str(Path(__file__).resolve().parents[2] / "var" / "test"))
os.environ.setdefault("FER_JOB_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("FER_JOB_STALE_AFTER_SECONDS", "8")  # a loaded 2-core machine can stall a thread for seconds
os.environ.setdefault("FER_JOB_REAP_INTERVAL_SECONDS", "1")
os.environ.setdefault("FER_WORKER_SEEN_WITHIN_SECONDS", "6")

from fer_site.settings.dev import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
