"""Browser tests: Playwright for Python driving the system Chromium (Debian's `chromium`, installed by .ci/run; no
browser is downloaded). The `browser` fixture (tests/conftest.py) launches it once per module."""
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 15_000


def unavailable(reason):
    """Skip a browser test that cannot run here; on CI (CI=true) that is a failure instead."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def launch_chromium():
    """A context manager giving the launched browser; skips (fails on CI) when Playwright or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    if not os.path.exists(CHROMIUM):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return _Launched(sync_playwright)


class _Launched:
    def __init__(self, sync_playwright):
        self._sync_playwright = sync_playwright

    def __enter__(self):
        # Playwright's sync API runs an event loop in this thread; Django would refuse the tests' ORM calls beside it.
        self._previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        self._pw = self._sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        return self._browser

    def __exit__(self, *exc):
        self._browser.close()
        self._pw.stop()
        if self._previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = self._previous


def log_in(page, live_server, username, next_path, *, password="pw"):
    """Sign `username` in through the site's log-in form and wait until it lands on `next_path`."""
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{live_server.url}/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}{next_path}")
    return page
