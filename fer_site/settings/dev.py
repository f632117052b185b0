"""The embedded default: one machine, debug on, a fixed development key. Never used by gunicorn."""
import os

from fer_site.settings.base import *  # noqa: F401,F403
from fer_site.settings.base import env_bool, env_list

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

# runserver serves static files itself in debug; WhiteNoise (for gunicorn) would warn about a missing STATIC_ROOT.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
