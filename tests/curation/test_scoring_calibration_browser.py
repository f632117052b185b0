"""The calibration page in a real browser (system Chromium through Playwright, against the live server): a reviewer
asks for another precision and gets that precision's thresholds and command line."""
import pytest
from django.core.cache import cache

from tests.browser import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture
def page(live_server, transactional_db, browser):
    cache.clear()  # the log-in throttle counts attempts in the cache
    UserFactory(username="rita")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield log_in(context.new_page(), live_server, "rita", "/datasets/calib/calibration/")
    context.close()


def test_a_reviewer_asks_for_another_precision_and_gets_its_thresholds(reviewed, page, live_server, tmp_path):
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
