"""Django for the benchmarks that use the product's models: the settings manage.py uses unless
DJANGO_SETTINGS_MODULE says otherwise, set up once, before anything imports a model."""
import os


def setup():
    """Set Django up (fer_site.settings.dev by default, as manage.py); a no-op where it already is."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fer_site.settings.dev")
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()
