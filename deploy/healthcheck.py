"""The web container's health check (docker-compose.yml): GET /healthz from gunicorn inside the container.

It sends a Host header the site allows, the first name of DJANGO_ALLOWED_HOSTS (a bare 127.0.0.1 is not one: Django
would answer 400), over plain HTTP, which production settings exempt from the HTTPS redirect for /healthz alone
(SECURE_REDIRECT_EXEMPT). A redirect is a failure, not followed. Exit 0 on 200; else 1, saying why.
Standard library only: it runs every few seconds and must start fast.

    python deploy/healthcheck.py [URL]      (default http://127.0.0.1:8000/healthz)
"""
import http.client
import os
import sys
from urllib.parse import urlsplit


def allowed_host(value):
    """A host name DJANGO_ALLOWED_HOSTS=value allows: its first entry (".example.org" allows example.org; "*"
    allows any, so localhost)."""
    first = next((name.strip() for name in value.split(",") if name.strip()), "localhost")
    return "localhost" if first == "*" else first.lstrip(".")


def main(argv):
    url = urlsplit(argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/healthz")
    host = allowed_host(os.environ.get("DJANGO_ALLOWED_HOSTS", ""))
    try:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
        conn.request("GET", url.path or "/", headers={"Host": host})
        reply = conn.getresponse()
        body = reply.read(2000).decode("utf-8", "replace")
    except OSError as exc:
        print(f"unhealthy: {url.geturl()}: {exc}")
        return 1
    if reply.status != 200:
        where = f" (to {reply.getheader('Location')})" if reply.getheader("Location") else ""
        print(f"unhealthy: {url.geturl()} with Host {host}: {reply.status} {reply.reason}{where}: {body}")
        return 1
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
