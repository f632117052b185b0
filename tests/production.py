"""Helpers for tests that run the site as production does: gunicorn under `fer_site.settings.production` (with the
static files collected as the Dockerfile collects them), worker and nginx processes, and a small HTTP client that
keeps cookies itself (so that Secure cookies work over the tests' plain HTTP, as they do behind a TLS proxy)."""
import http.client
import re
import socket
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from tests.conftest import REPO, Process  # noqa: F401 (the tests that start servers take it from here)
from tests.private_redis import free_port  # noqa: F401 (the tests that start servers take it from here)

SECRET_KEY = "documented-env-secret-key-for-tests-only-0123456789abcdefghij"
VENV_BIN = str(Path(sys.executable).parent)
_static_root = None


def collected_static(tmp_path_factory):
    """STATIC_ROOT as the image's build step makes it (`collectstatic` under production settings), once per run."""
    global _static_root
    if _static_root is None:
        root = tmp_path_factory.mktemp("staticfiles")
        env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fer_site.settings.production",
               "DJANGO_SECRET_KEY": "build-only-collectstatic-key-not-used-at-run-time-0123456789",
               "DJANGO_ALLOWED_HOSTS": "localhost", "FER_STATIC_ROOT": str(root),
               "FER_DATA_DIR": str(tmp_path_factory.mktemp("collectstatic-data"))}
        done = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        _static_root = root
    return _static_root


def wait_for_port(port, process, *, timeout=180):
    """Wait until something accepts connections on 127.0.0.1:port; fail at once, with its log, if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.argv[:3]} exited with {process.proc.returncode}:\n{process.log(last=4000)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s:\n{process.log(last=4000)}")


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())


class HttpClient:
    """Requests to http://127.0.0.1:port with a fixed Host and extra headers (e.g. the X-Forwarded-Proto a TLS proxy
    would add), no redirect following, and a cookie jar that ignores the Secure flag."""

    def __init__(self, port, *, host, headers=None):
        self.port, self.host, self.extra = port, host, dict(headers or {})
        self.cookies = {}

    def request(self, method, path, *, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Host": self.host, **self.extra, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            reply = conn.getresponse()
            data = reply.read()
            for value in reply.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    self.cookies[name] = morsel.value
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def log_in(self, username, password, *, origin):
        """Sign in through the site's log-in form, as a browser does (CSRF cookie and token, Origin and Referer)."""
        page = self.get("/login/")
        assert page.status == 200, (page.status, page.headers)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1).decode()
        body = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        done = self.request("POST", "/login/", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Origin": origin, "Referer": f"{origin}/login/"})
        assert done.status == 302 and urlsplit(done.header("Location")).path == "/", (done.status, done.body[-2000:])
        assert "sessionid" in self.cookies
        return done


def production_password(password):
    """`password` hashed as production settings hash it (the tests' settings use a fast hasher production lacks)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    return hasher.encode(password, hasher.salt())
