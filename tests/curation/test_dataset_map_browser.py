"""The dataset map in a real browser (the system Chromium under Playwright, against the live server), at 4,000
images: the page draws every point under the content security policy, hovering a point shows its thumbnail,
clicking a point lands on that image's review card, and a lasso around one cluster lands on a grid showing exactly
that cluster's images."""
import io
import math
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command

from curation.models import Image
from tests.browser import log_in
from tests.conftest import wait_for
from tests.curation.map_data import SMALL, clustered_dataset
from tests.curation.test_review_browser import _png
from tests.factories import CuratorFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
"""
N = 4000


def _tiles(page):
    return sorted(page.eval_on_selector_all("ol.tiles label.tile", "els => els.map(e => e.title)"))


def test_the_map_of_4000_images_opens_a_card_and_lassoes_a_cluster_into_the_grid(live_server, transactional_db,
                                                                                   browser, tmp_path):
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    ds = clustered_dataset(tmp_path, name="faces4k", n=N)
    call_command("map_dataset", "--dataset", ds.name, "--method", "pca", "--inline", stdout=io.StringIO(),
                 stderr=io.StringIO())
    CuratorFactory(username="mara")
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.add_init_script(RECORD_VIOLATIONS)
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    try:
        page = log_in(context.new_page(), live_server, "mara", f"/datasets/{ds.name}/")
        page.click("#map-link")
        page.wait_for_selector(f"#map[data-points='{N}']")
        assert page.evaluate("window.__cspViolations") == []
        assert "PCA" in page.inner_text("#map-about")
        print(f"map of {N} points loaded and drawn in {page.get_attribute('#map', 'data-load-ms')} ms")
        box = page.locator("#map").bounding_box()

        def screen(image_id):
            x, y = page.evaluate(f"window.datasetMap.screenOf({image_id})")
            return box["x"] + x, box["y"] + y

        # Hover: the point's thumbnail (through the site, from its media file) and its words.
        target = Image.objects.filter(dataset=ds, path="img123.png").get()
        # Its file, for real: the thumbnail comes through a redirect, which the route above does not see.
        stored = Path(settings.MEDIA_ROOT) / target.file
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(_png())
        page.mouse.move(*screen(target.pk))
        page.wait_for_selector("#map-tip:not([hidden])")
        assert page.get_attribute("#map", "data-hovered") == str(target.pk)
        assert f"image {target.pk}: {target.get_label_display()}" in page.inner_text("#map-tip")
        # (polled from here: wait_for_function would evaluate a string, which the page's policy forbids)
        wait_for(lambda: page.evaluate("(() => { const i = document.querySelector('#map-tip img'); "
                                       "return i.complete && i.naturalWidth > 0; })()"), timeout=15,
                 what="the hovered point's thumbnail")
        assert page.get_attribute("#map-tip img", "src").endswith(f"/map/image/{target.pk}/")

        # Click: that image's card.
        page.mouse.click(*screen(target.pk))
        page.wait_for_selector(f"#card[data-image-id='{target.pk}']")
        assert "/review/" in page.url and page.evaluate("window.__cspViolations") == []

        # Lasso the smallest cluster (contempt, SMALL images): a ring just outside its points.
        page.go_back()
        page.wait_for_selector(f"#map[data-points='{N}']")
        box = page.locator("#map").bounding_box()
        cluster = list(Image.objects.filter(dataset=ds, split="train", label=7).values_list("pk", "path"))
        assert len(cluster) == SMALL
        points = [screen(pk) for pk, _ in cluster]
        cx, cy = sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)
        radius = max(math.dist((cx, cy), p) for p in points) + 6
        page.check("input[name=map-mode][value=lasso]")
        ring = [(cx + radius * math.cos(2 * math.pi * k / 36), cy + radius * math.sin(2 * math.pi * k / 36))
                for k in range(37)]
        page.mouse.move(*ring[0])
        page.mouse.down()
        for x, y in ring[1:]:
            page.mouse.move(x, y, steps=2)
        page.mouse.up()
        assert page.get_attribute("#map", "data-selected") == str(SMALL)
        assert page.inner_text("#map-selected-count") == f"{SMALL} images selected"
        page.click("#map-to-grid")
        page.wait_for_selector("ol.tiles")
        assert "/review/grid/" in page.url and "selection=" in page.url
        assert _tiles(page) == sorted(path for _, path in cluster)
        assert page.evaluate("window.__cspViolations") == []
    finally:
        context.close()
