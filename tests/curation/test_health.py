"""/healthz checks the embedded shape's services for real too: the filesystem broker's folders and the database
cache's table (tests/test_redis_outage.py does Redis, stopped under a running server)."""
import pytest
from django.core.management import call_command


def _db_cache(table):
    return {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": table}}


def _broker(settings, folder):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        key: str(folder / name) for key, name in (("data_folder_in", "queue"), ("data_folder_out", "queue"),
                                                  ("control_folder", "control"), ("processed_folder", "processed"))}


@pytest.mark.django_db
def test_healthz_reports_the_embedded_services_each_and_answers_200(client, settings, tmp_path):
    settings.CACHES = _db_cache("fer_cache_health")
    call_command("createcachetable", "fer_cache_health", verbosity=0)
    _broker(settings, tmp_path)
    for name in ("queue", "control", "processed"):
        (tmp_path / name).mkdir()
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True and body["workers"] == 0
    assert body["broker"] == {"ok": True, "kind": "filesystem"}
    assert body["cache"] == {"ok": True, "kind": "database"}
    assert body["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_answers_503_when_the_filesystem_brokers_folder_is_gone(client, settings, tmp_path):
    _broker(settings, tmp_path)  # folders never made
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["ok"] is False, body
    assert body["broker"] == {"ok": False, "kind": "filesystem", "error": "FileNotFoundError"}
    assert str(tmp_path) not in response.content.decode()
    assert body["database"]["ok"] is True and body["cache"]["ok"] is True


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_caches_table_is_missing(client, settings):
    settings.CACHES = _db_cache("fer_cache_never_created")
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["ok"] is False, body
    assert body["cache"]["ok"] is False and body["cache"]["kind"] == "database", body
    assert body["database"]["ok"] is True
