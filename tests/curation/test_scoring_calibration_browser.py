"""The calibration page in a real browser (system Chromium through Playwright, against the live server): a reviewer
asks for another precision and gets that precision's thresholds and command line."""
import os

import pytest
from django.core.cache import cache

from tests.curation.test_scoring_calibration import reviewed  # noqa: F401 (the fixture)
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def page(live_server, transactional_db):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        reason = "playwright or /usr/bin/chromium is missing"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    cache.clear()  # the log-in throttle counts attempts in the cache
    UserFactory(username="rita")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/login/?next=/datasets/calib/calibration/")
        page.fill("input[name=username]", "rita")
        page.fill("input[name=password]", "pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/datasets/calib/calibration/")
        yield page
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def test_a_reviewer_asks_for_another_precision_and_gets_its_thresholds(reviewed, page, live_server, tmp_path):  # noqa: F811
    happy = page.locator('#suggested tr[data-label="happy"] .suggested-ambiguity strong')
    assert happy.inner_text() == "0.64"  # the default precision, 0.5
    page.fill("input[name=precision]", "0.8")
    page.click("text=Calibrate")
    page.wait_for_url(f"{live_server.url}/datasets/calib/calibration/?precision=0.8")
    assert happy.inner_text() == "0.8"
    assert page.inner_text("#command") == ("python manage.py score_ambiguity --dataset calib --threshold 0.8 "
                                           "--class-threshold happy=0.8")
    sad = page.locator('#suggested tr[data-label="sad"] td.reason').first.inner_text()
    assert "needs 20 reviewed images" in sad
    page.screenshot(path=str(tmp_path / "calibration.png"), full_page=True)
    page.fill("input[name=precision]", "1.5")
    page.click("text=Calibrate")
    # The browser's own number check refuses it before a request is made; the server's 400 is tested without one.
    assert page.url.endswith("?precision=0.8")
