"""The health report in a real browser (the system Chromium under Playwright, against the live server): a curator
follows three of the report's links, each clicked on the page, and the grid shows exactly the images the figure
counts; the page and the dataset page's charts raise no content-security-policy violation; and the file
`manage.py health_report` writes, opened from disk (file://), shows the same figures with nothing fetched."""
import pytest
from django.core.cache import cache
from django.core.management import call_command

from curation.models import Image
from tests.browser import log_in
from tests.curation.health_data import EXPECTED, health_dataset
from tests.curation.test_review_browser import _png
from tests.factories import CuratorFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
"""

# (the figure's data-figure key, the images it must show: a Django filter on the dataset's images)
FOLLOWED = (
    ("issues.label_issues.unreviewed", {"classifier_flagged": True, "status": Image.Status.UNREVIEWED}),
    ("issues.outliers.all", {"datalab_outlier": True}),
    ("reviewed_confusion.happy.sad", {"original_label": 1, "label": 2, "status": Image.Status.RELABELLED}),
    ("issues.test_leaks.all", {"path": "leak-t.png"}),
)


def _tiles(page):
    return sorted(page.eval_on_selector_all("ol.tiles label.tile", "els => els.map(e => e.title)"))


def test_the_reports_links_land_on_exactly_the_images_they_count(live_server, transactional_db, browser, tmp_path):
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    ds = health_dataset()
    CuratorFactory(username="cora")  # decided none of them: the grid shows her every decided image too
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    try:
        page = log_in(context.new_page(), live_server, "cora", "/datasets/hd/")
        assert page.evaluate("window.__cspViolations") == []
        assert page.locator("svg.class-bars rect[data-class]").count() == 16
        assert page.locator("#review-confusion a").count() == 4  # happy->sad, neutral, fear->surprise, anger excluded
        page.click("#health-link")
        page.wait_for_selector("#health-report")
        assert page.evaluate("window.__cspViolations") == []
        assert "cleanlab" in page.inner_text("p.health-estimate")
        figures = {}
        for key, where in FOLLOWED:
            page.goto(f"{live_server.url}/datasets/hd/health/")
            link = page.locator(f'a[data-figure="{key}"]')
            counted = int(link.inner_text().split()[0])
            figures[key] = counted
            link.click()
            page.wait_for_selector("ol.tiles")
            assert "/review/grid/" in page.url
            expected = sorted(Image.objects.filter(dataset=ds, **where).values_list("path", flat=True))
            assert len(expected) == counted, key
            assert _tiles(page) == expected, key
        assert figures["issues.label_issues.unreviewed"] == EXPECTED["issues"]["label_issues"][1]
        assert figures["issues.outliers.all"] == EXPECTED["issues"]["outliers"][0]

        # The file, opened from disk: the same figures, and nothing requested from anywhere.
        out = tmp_path / "hd-health.html"
        call_command("health_report", "--dataset", "hd", "--out", str(out))
        requested = []
        offline = browser.new_context()
        offline.on("request", lambda r: requested.append(r.url))
        try:
            disk = offline.new_page()
            disk.goto(out.as_uri())
            disk.wait_for_selector("#health-report")
            for key, counted in figures.items():
                assert int(disk.locator(f'a[data-figure="{key}"]').inner_text().split()[0]) == counted
            assert disk.locator("svg.heat-map").count() == 2 and disk.locator("svg.class-bars").count() == 1
            # The style sheets are inline: the tables are laid out by them (the site's font size on table.heat).
            assert disk.evaluate("getComputedStyle(document.querySelector('table.heat')).borderCollapse") == \
                "collapse"
            assert requested == [out.as_uri()]
        finally:
            offline.close()
    finally:
        context.close()
