"""The random audit in a real browser: a curator turns it on from the dataset page, reviews the queue with the
keyboard (audit cards look like any other), and reads the audit's estimates on the dataset page. Playwright for
Python driving the system Chromium against pytest-django's live server, as tests/curation/test_review_browser.py."""
import pytest
from django.core.cache import cache

from curation.models import Image, LabelChange
from curation.review.audit import wilson
from tests.browser import log_in
from tests.curation.test_review_browser import _png, card_id, settled
from tests.factories import CuratorFactory, DatasetFactory, ImageFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SURPRISE_KEY = "4"  # the 4th class in canonical order: surprise (code 3)


def test_a_curator_reviews_with_the_audit_on_and_reads_its_estimates(live_server, transactional_db, browser):
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    ds = DatasetFactory(name="audited")
    wrong = set()
    for code in (0, 1, 2):  # neutral, happy, sad: 10 images each; 2 of each are really surprise
        for i in range(10):
            image = ImageFactory(dataset=ds, original_label=code, label=code, suspicion=1 - (10 * code + i) / 100)
            if i in (3, 8):
                wrong.add(image.pk)
    CuratorFactory(username="cora")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    try:
        page = log_in(context.new_page(), live_server, "cora", "/datasets/audited/")
        page.fill("#audit-share input[name=audit_share]", "0.5")
        page.click("#audit-share button[type=submit]")
        page.wait_for_selector("text=audited: 50 % of the cards served are random audit draws from now on.")

        page.goto(f"{live_server.url}/review/?dataset=audited")
        for _ in range(30):
            settled(page)
            pk = card_id(page)
            page.keyboard.press(SURPRISE_KEY if pk in wrong else "Enter")
            page.wait_for_function(
                f"() => !document.querySelector('#card[data-image-id=\"{pk}\"]')")
        page.wait_for_selector("p.empty")
        audited = set(Image.objects.filter(dataset=ds, audit=True).values_list("pk", flat=True))
        assert audited and audited < {i.pk for i in Image.objects.filter(dataset=ds)}
        assert set(LabelChange.objects.filter(image__dataset=ds, audit=True).values_list("image_id", flat=True)) \
            == audited

        # The whole dataset is reviewed, so the audit sample is every image: 6 wrong of 30.
        page.goto(f"{live_server.url}/datasets/audited/#audit")
        low, high = wilson(6, 30)
        overall = page.inner_text("p.audit-overall")
        assert overall == (f"Estimated share of wrong labels: 20.0 % (95 % interval {100 * low:.1f} % to "
                           f"{100 * high:.1f} %), from 30 audit decisions.")
        rows = page.inner_text("table.audit-per-label")
        assert "neutral\tnot enough audit decisions yet (10 of the 20 needed)" in rows
        assert "surprise 2" in page.inner_text("table.audit-confusion")
        assert "AUROC" in page.inner_text("table.audit-signals")
        assert "Reviewers' decisions are treated as right" in page.inner_text("#audit")
    finally:
        context.close()
