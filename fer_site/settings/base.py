"""Settings shared by every environment. Everything that differs between machines comes from the environment.

Embedded default (nothing set): SQLite in WAL mode with immediate transactions under FER_DATA_DIR, and Kombu's
filesystem broker in FER_DATA_DIR/broker, so one machine runs the web server and a worker with no server installed.
Scaled: DATABASE_URL=postgres://... and CELERY_BROKER_URL=redis://... run the same code on PostgreSQL and Redis.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE as CSP_NONCE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


# Everything the product writes (SQLite database, media, broker folder, checkpoints) lives under one folder.
DATA_DIR = Path(os.environ.get("FER_DATA_DIR", BASE_DIR / "var")).resolve()
MEDIA_ROOT = Path(os.environ.get("FER_MEDIA_ROOT", DATA_DIR / "media")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("FER_STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]


def media_accel_redirect(value):
    """FER_MEDIA_ACCEL_REDIRECT: "" (Django sends media files itself) or the URL prefix of the web server's internal
    location that serves MEDIA_ROOT (nginx's X-Accel-Redirect), e.g. "/protected-media/"."""
    if not value:
        return ""
    if (not value.startswith("/") or not value.endswith("/") or "/../" in value or "/./" in value
            or any(c.isspace() or c in "?#%\\" for c in value)):
        raise ImproperlyConfigured(f"FER_MEDIA_ACCEL_REDIRECT={value!r} must be a URL path that starts and ends with "
                                   f"'/', such as /protected-media/ (the web server's internal media location)")
    if value == MEDIA_URL:
        raise ImproperlyConfigured(f"FER_MEDIA_ACCEL_REDIRECT={value!r} must differ from MEDIA_URL: the internal "
                                   f"location must not be the public one")
    return value


# Who sends /media/ files after the view checked the user and the path (curation/web/media.py): Django, or the web
# server in front when this names its internal location (docs/deploy.md, "Media files").
MEDIA_ACCEL_REDIRECT = media_accel_redirect(os.environ.get("FER_MEDIA_ACCEL_REDIRECT", ""))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "knox",  # API tokens, stored hashed with an expiry (curation/tokens.py)
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "curation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "curation.web.error_pages.SiteErrorPagesMiddleware",
]
# The site's 404 and 500 pages also where DEBUG is on (curation/web/error_pages.py); false: Django's technical pages.
SITE_ERROR_PAGES = env_bool("FER_SITE_ERROR_PAGES", True)

ROOT_URLCONF = "fer_site.urls"
WSGI_APPLICATION = "fer_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Content-Security-Policy (django-csp) -----------------------------------------------------------------------
# Scripts and style sheets come from this site's static files only; the few inline ones (the API docs' pages) carry
# the request's nonce. Style attributes stay allowed (style-src-attr): the server writes bar widths and heat-map
# colours into them, and no script can run from one. htmx is told not to inject its own <style> (base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", CSP_NONCE],
        "style-src": ["'self'", CSP_NONCE],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Where a person sets a password (the password forms, the admin, createsuperuser, changepassword): Django's
# validators, at least 10 characters. set_password() in code (the demo's users, the tests') is not validated.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Database -------------------------------------------------------------------------------------------------
SQLITE_OPTIONS = {
    # Immediate transactions take the write lock at BEGIN, so two writers queue on busy_timeout instead of
    # failing with "database is locked" when one upgrades a read transaction to a write.
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
}

# Persistent connections stay off by default: `manage.py runserver` serves each request on a new thread, and a
# persistent connection belongs to its thread, so every request would leave one open until the server hit
# PostgreSQL's max_connections ("too many clients"). Under gunicorn's fixed workers, FER_DB_CONN_MAX_AGE=60 reuses
# each worker's connection safely.
DB_CONN_MAX_AGE = env_int("FER_DB_CONN_MAX_AGE", 0)
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=DB_CONN_MAX_AGE,
                                                  conn_health_checks=True)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "db.sqlite3")}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
    # Tests that start a worker process need a database file both processes can open, not ":memory:".
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}

# --- Jobs and Celery ------------------------------------------------------------------------------------------
# The Job table is the truth; these numbers tell the reaper when a running job's worker is gone.
JOB_HEARTBEAT_SECONDS = float(os.environ.get("FER_JOB_HEARTBEAT_SECONDS", "2"))
JOB_STALE_AFTER_SECONDS = float(os.environ.get("FER_JOB_STALE_AFTER_SECONDS", "60"))
JOB_REAP_INTERVAL_SECONDS = float(os.environ.get("FER_JOB_REAP_INTERVAL_SECONDS", "10"))
JOB_MAX_ATTEMPTS = env_int("FER_JOB_MAX_ATTEMPTS", 3)
# A queued job whose message may have been lost (a worker killed between taking and claiming it) is sent again
# after this long; a duplicate message is harmless because a job is claimed with a conditional update.
JOB_RESEND_QUEUED_AFTER_SECONDS = float(os.environ.get("FER_JOB_RESEND_QUEUED_AFTER_SECONDS", "900"))
WORKER_SEEN_WITHIN_SECONDS = float(os.environ.get("FER_WORKER_SEEN_WITHIN_SECONDS", "30"))
# Longest job we expect (full-size CycleGAN on a GPU); the broker must not redeliver an unacked job before then.
JOB_VISIBILITY_TIMEOUT_SECONDS = env_int("FER_JOB_VISIBILITY_TIMEOUT_SECONDS", 48 * 3600)
# score_ambiguity splits its SSIMs into chunk jobs of at most this many images (per generator direction), which any
# GPU worker takes; the default is a few seconds of work on one GPU.
SCORE_CHUNK_IMAGES = env_int("FER_SCORE_CHUNK_IMAGES", 4096)

BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "polling_interval": 0.5,
    }
    for _folder in ("queue", "control", "processed"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": JOB_VISIBILITY_TIMEOUT_SECONDS}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False

# --- Cache ----------------------------------------------------------------------------------------------------
# The default cache holds the rate limits' counts (curation/api/throttles.py) and the run comparison's snapshot
# diffs, so it must be shared by every web process: a per-process cache lets N gunicorn workers allow N times each
# limit. FER_CACHE_URL picks it: redis://host:port/N, db:// (a table in the database; `manage.py migrate` creates
# it) or locmem:// (per process: one process only). Unset: the broker's Redis when the broker is Redis, in the
# next database number (so flushing one never empties the other), else the database. A Redis cache falls back to
# the database cache (CACHES["fallback"]) while Redis does not answer (curation/cache.py), trying Redis again
# every FER_CACHE_RETRY_SECONDS: an outage neither breaks log-in and export nor lifts their limits.
CACHE_TABLE = "fer_cache"
CACHE_KEY_PREFIX = os.environ.get("FER_CACHE_KEY_PREFIX", "fer")
CACHE_RETRY_SECONDS = float(os.environ.get("FER_CACHE_RETRY_SECONDS", "5"))


def cache_url_default(broker_url):
    """The cache URL used when FER_CACHE_URL is unset: Redis beside a Redis broker, else the database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(broker_url)
    if parts.scheme not in {"redis", "rediss"}:
        return "db://"
    number = parts.path.strip("/") or "0"
    if not number.isdigit():
        raise ImproperlyConfigured(f"CELERY_BROKER_URL={broker_url!r}: the Redis database number {number!r} is not "
                                   f"a whole number; set FER_CACHE_URL to say where the cache lives")
    number = int(number)
    cache_number = number + 1 if number < 15 else number - 1
    return urlunsplit(parts._replace(path=f"/{cache_number}"))


def cache_from_url(url):
    """A CACHES["default"] entry for FER_CACHE_URL; anything else is an error naming the setting."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in {"redis", "rediss", "unix"}:
        return {"BACKEND": "curation.cache.FallbackRedisCache", "LOCATION": url, "KEY_PREFIX": CACHE_KEY_PREFIX,
                "OPTIONS": {"FALLBACK": "fallback", "RETRY_AFTER_SECONDS": CACHE_RETRY_SECONDS,
                            "socket_connect_timeout": 0.5, "socket_timeout": 1.0}}
    if scheme == "db":
        table = url.split("://", 1)[1].strip("/") or CACHE_TABLE
        return {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": table,
                "KEY_PREFIX": CACHE_KEY_PREFIX, "OPTIONS": {"MAX_ENTRIES": 10_000}}
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fer"}
    raise ImproperlyConfigured(f"FER_CACHE_URL={url!r} is not a cache this site knows: use redis://host:port/N, "
                               f"db:// (a table in the database) or locmem:// (one process only)")


CACHE_URL = os.environ.get("FER_CACHE_URL") or cache_url_default(CELERY_BROKER_URL)
def caches_from_url(url):
    """CACHES for FER_CACHE_URL: the default cache, and for Redis the database cache it falls back to."""
    caches = {"default": cache_from_url(url)}
    if caches["default"]["BACKEND"] == "curation.cache.FallbackRedisCache":
        caches["fallback"] = cache_from_url("db://")
    return caches


CACHES = caches_from_url(CACHE_URL)

# --- Import limits --------------------------------------------------------------------------------------------
# Imports read only below these folders (os.pathsep-separated): a curator queues an import, but the worker reads
# the server's disk. Default: the data folder's imports/ and the demo's faces.
FER_IMPORT_ROOTS = [Path(p).expanduser() for p in os.environ.get("FER_IMPORT_ROOTS", "").split(os.pathsep) if p] \
    or [DATA_DIR / "imports", DATA_DIR / "demo" / "faces"]
IMPORT_MAX_PIXELS = env_int("FER_IMPORT_MAX_PIXELS", 40_000_000)
IMPORT_MAX_FILE_BYTES = env_int("FER_IMPORT_MAX_FILE_BYTES", 50 * 1024 * 1024)

# --- Review queue and API -------------------------------------------------------------------------------------
# How long a reviewer holds an image they opened; the browser queue renews it while the page is open.
REVIEW_LEASE_SECONDS = env_int("FER_REVIEW_LEASE_SECONDS", 300)

# Reverse proxies in front of the web server (FER_TRUSTED_PROXIES): how many addresses of X-Forwarded-For, from the
# right, were written by proxies this site trusts. 0 (the default, gunicorn reached directly): forwarded headers are
# ignored, the client is the TCP peer. curation.addresses.client_address reads it for every per-address limit;
# DRF's NUM_PROXIES and, in production, SECURE_PROXY_SSL_HEADER follow it.
TRUSTED_PROXIES = env_int("FER_TRUSTED_PROXIES", 0)
if TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured(f"FER_TRUSTED_PROXIES={os.environ['FER_TRUSTED_PROXIES']!r} must be 0 (no proxy in "
                               f"front of the web server) or the number of reverse proxies in front of it")

REST_FRAMEWORK = {
    "NUM_PROXIES": TRUSTED_PROXIES,
    # Token first: an anonymous request then gets 401 with a WWW-Authenticate header, not a bare 403. Tokens are
    # django-rest-knox's (a digest and an expiry in the database), sent as DRF's were: `Authorization: Token <token>`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "curation.api.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "curation.api.errors.api_exception_handler",
    # Scoped throttles (curation/api/throttles.py). The counts live in the default cache, shared by every web
    # process (see CACHES above).
    "DEFAULT_THROTTLE_RATES": {
        "export": os.environ.get("FER_THROTTLE_EXPORT", "20/min"),
        "login": os.environ.get("FER_THROTTLE_LOGIN", "10/min"),
    },
}

# API tokens live this long from when they are issued (the token endpoint, drf_create_token); then they are refused
# with 401 "Token expired". Never forever: a leaked token stops working on its own. An hour to a year, here and for
# `drf_create_token --ttl-hours` (curation/tokens.py).
TOKEN_TTL_HOURS_MIN, TOKEN_TTL_HOURS_MAX = 1, 365 * 24
TOKEN_TTL_HOURS = env_int("FER_TOKEN_TTL_HOURS", 7 * 24)
if not TOKEN_TTL_HOURS_MIN <= TOKEN_TTL_HOURS <= TOKEN_TTL_HOURS_MAX:
    raise ImproperlyConfigured(f"FER_TOKEN_TTL_HOURS={TOKEN_TTL_HOURS} must be between {TOKEN_TTL_HOURS_MIN} and "
                               f"{TOKEN_TTL_HOURS_MAX} hours (1 year): API tokens always expire")
REST_KNOX = {"TOKEN_TTL": timedelta(hours=TOKEN_TTL_HOURS), "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}

SPECTACULAR_SETTINGS = {
    "TITLE": "FER label curation API",
    "DESCRIPTION": "Datasets, images and their label history, the review queue, jobs, training runs and the "
                   "cleaned-label CSV export. Labels are the canonical class names.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "Label": "training.labels.CLASSES",
        "ImageSplit": "curation.models.Image.Split",
        "ImageStatus": "curation.models.Image.Status",
        "JobStatus": "curation.models.Job.Status",
        "RunStatus": "curation.models.Run.Status",
    },
}



def broker_hostname_noise(record):
    """False for kombu's "No hostname was supplied" warning: the embedded filesystem broker has no host, and kombu
    says so each time a command queues a job on it (issue 35). Every other record passes."""
    return not (CELERY_BROKER_URL.startswith("filesystem://")
                and record.getMessage().startswith("No hostname was supplied"))


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"broker_hostname_noise": {"()": "django.utils.log.CallbackFilter",
                                          "callback": broker_hostname_noise}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("FER_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"},
                "kombu.connection": {"filters": ["broker_hostname_noise"]}},
}
