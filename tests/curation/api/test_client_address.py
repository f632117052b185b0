"""Client addresses come from FER_TRUSTED_PROXIES only: with no proxy trusted (the default) a forged X-Forwarded-For
changes nothing, so the log-in limit holds on the token endpoint, the log-in form and the admin's log-in; with N
proxies the N-th address from the right of X-Forwarded-For is the client's."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, RequestFactory

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[3]
LIMIT = 5
TRIES = 30


@pytest.fixture
def limit_five(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"export": "20/min", "login": f"{LIMIT}/min"}}


def _forged(i):
    return f"203.0.113.{i}, 198.51.100.{i}"


def test_token_endpoint_limit_holds_under_forged_forwarded_for(reviewer, limit_five):
    client = Client()
    answers = [client.post("/api/auth/token/", {"username": "rita", "password": "wrong"},
                           HTTP_X_FORWARDED_FOR=_forged(i)).status_code for i in range(TRIES)]
    assert answers.count(400) <= LIMIT and answers[-1] == 429
    assert answers.count(429) >= TRIES - LIMIT
    right = client.post("/api/auth/token/", {"username": "rita", "password": "pw"},
                        HTTP_X_FORWARDED_FOR=_forged(99))
    assert right.status_code == 429 and "token" not in right.json()


def test_login_form_limit_holds_under_forged_forwarded_for(reviewer, limit_five):
    client = Client()
    answers = [client.post("/login/", {"username": "rita", "password": "wrong"},
                           HTTP_X_FORWARDED_FOR=_forged(i)).status_code for i in range(TRIES)]
    assert answers.count(200) <= LIMIT and answers.count(429) >= TRIES - LIMIT
    right = client.post("/login/", {"username": "rita", "password": "pw"}, HTTP_X_FORWARDED_FOR=_forged(99))
    assert right.status_code == 429 and "Too many log-in attempts" in right.content.decode()
    assert "_auth_user_id" not in client.session


def test_admin_login_is_limited_and_holds_under_forged_forwarded_for(db, limit_five):
    UserFactory(username="ada", is_staff=True, is_superuser=True)
    client = Client()
    answers = [client.post("/admin/login/", {"username": "ada", "password": "wrong", "next": "/admin/"},
                           HTTP_X_FORWARDED_FOR=_forged(i)).status_code for i in range(TRIES)]
    assert answers.count(200) <= LIMIT and answers.count(429) >= TRIES - LIMIT
    right = client.post("/admin/login/", {"username": "ada", "password": "pw", "next": "/admin/"},
                        HTTP_X_FORWARDED_FOR=_forged(99))
    assert right.status_code == 429 and "Too many log-in attempts" in right.content.decode()
    assert "_auth_user_id" not in client.session
    assert Client(REMOTE_ADDR="10.0.0.9").post(
        "/admin/login/", {"username": "ada", "password": "pw", "next": "/admin/"}).status_code == 302


def test_the_three_log_ins_share_one_count_per_address(reviewer, limit_five):
    client = Client()
    for _ in range(2):
        client.post("/login/", {"username": "rita", "password": "wrong"})
        client.post("/api/auth/token/", {"username": "rita", "password": "wrong"})
    client.post("/admin/login/", {"username": "rita", "password": "wrong"})
    assert client.post("/admin/login/", {"username": "rita", "password": "wrong"}).status_code == 429


def client_address(request):
    from curation.addresses import client_address as address

    return address(request)


def _request(remote, forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_no_trusted_proxy_ignores_forwarded_headers(settings):
    settings.TRUSTED_PROXIES = 0
    assert client_address(_request("192.0.2.7", "203.0.113.1")) == "192.0.2.7"


def test_trusted_proxies_take_the_nth_address_from_the_right(settings):
    settings.TRUSTED_PROXIES = 1
    assert client_address(_request("10.0.0.1", "203.0.113.1, 198.51.100.2")) == "198.51.100.2"
    assert client_address(_request("10.0.0.1")) == "10.0.0.1"  # no header: the peer
    settings.TRUSTED_PROXIES = 2
    assert client_address(_request("10.0.0.1", "forged, 198.51.100.2, 10.0.0.2")) == "198.51.100.2"
    assert client_address(_request("10.0.0.1", "198.51.100.2")) == "198.51.100.2"  # fewer than N: the left-most


def test_behind_one_proxy_two_clients_have_their_own_counts(reviewer, limit_five, settings):
    settings.TRUSTED_PROXIES = 1
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    for i in range(LIMIT):  # the forged left-most value changes, the address the proxy appended does not
        proxy.post("/api/auth/token/", {"username": "rita", "password": "wrong"},
                   HTTP_X_FORWARDED_FOR=f"{_forged(i)}, 192.0.2.1")
    assert proxy.post("/api/auth/token/", {"username": "rita", "password": "pw"},
                      HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.1").status_code == 429
    assert proxy.post("/api/auth/token/", {"username": "rita", "password": "pw"},
                      HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 200


def _settings_of(module, name, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FER_TRUSTED"))}
    environ.update(DJANGO_SETTINGS_MODULE=module, DJANGO_SECRET_KEY="k" * 20 + "-Zq8vN3xR7tW1yB5mP0cL9hJ2gF6dS4aE",
                   DJANGO_ALLOWED_HOSTS="fer.example.org", **env)
    code = f"import django; django.setup(); from django.conf import settings; print(repr(settings.{name}))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environ, capture_output=True, text=True)


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_trusted_proxies_refuses_anything_but_a_whole_number(value):
    done = _settings_of("fer_site.settings.test", "TRUSTED_PROXIES", FER_TRUSTED_PROXIES=value)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and f"FER_TRUSTED_PROXIES={value!r}" in done.stderr


def test_production_trusts_the_proxy_ssl_header_only_behind_a_trusted_proxy():
    alone = _settings_of("fer_site.settings.production", "SECURE_PROXY_SSL_HEADER")
    assert alone.returncode == 0 and alone.stdout.strip() == "None", alone.stderr
    proxied = _settings_of("fer_site.settings.production", "SECURE_PROXY_SSL_HEADER", FER_TRUSTED_PROXIES="1")
    assert proxied.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')", proxied.stderr
    drf = _settings_of("fer_site.settings.production", "REST_FRAMEWORK['NUM_PROXIES']", FER_TRUSTED_PROXIES="2")
    assert drf.stdout.strip() == "2", drf.stderr
