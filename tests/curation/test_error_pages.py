"""The site's own 500 page where DEBUG is on (the development settings, so the demo), as in production: no
traceback, settings or URL patterns to whoever hit the error; the error is logged and the test client still sees it."""
import pytest
from django.test import Client
from django.urls import path

import fer_site.urls


def _broken(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("broken/", _broken), *fer_site.urls.urlpatterns]
handler404, handler500 = fer_site.urls.handler404, fer_site.urls.handler500


@pytest.mark.urls(__name__)
def test_an_error_in_debug_shows_the_sites_500_page(settings, db, caplog):
    settings.DEBUG = True
    response = Client(raise_request_exception=False).get("/broken/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "<title>Server error · FER label curation</title>" in body and 'href="/"' in body
    assert "a bug in a view" not in body and "Traceback" not in body
    assert any("a bug in a view" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    with pytest.raises(RuntimeError, match="a bug in a view"):
        Client().get("/broken/")


@pytest.mark.urls(__name__)
def test_django_pages_stay_available_to_a_developer(settings, db):
    settings.DEBUG, settings.SITE_ERROR_PAGES = True, False
    assert "Traceback" in Client(raise_request_exception=False).get("/broken/").content.decode()
