"""A new user's first hour, one step off the demo's path (issue 35), in the system Chromium: a mistyped filter value,
a wrong address, the key of the label an image already has. Each page tells the truth about what happened."""
import re

import pytest
from django.core.cache import cache

from tests.browser import log_in
from curation.models import Image, LabelChange
from tests.curation.test_review_browser import _png, card_id, settled, wait_card
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(live_server, transactional_db, browser):
    """A reviewer signed in through the log-in form, on the review queue."""
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    UserFactory(username="reviewer")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    yield log_in(context.new_page(), live_server, "reviewer", "/review/")
    context.close()


@pytest.fixture
def demo():
    """A scored dataset of 3 unreviewed happy and 2 unreviewed sad train images."""
    ds = DatasetFactory(name="demo")
    for i, label in enumerate([1, 1, 1, 2, 2]):
        ImageFactory(dataset=ds, label=label, original_label=label, suspicion=0.9 - i / 10)
    return ds


def _text(page, selector):
    return re.sub(r"\s+", " ", page.inner_text(selector))


# 1. A rejected filter value: the error beside its field, the rest of the filter kept, and no false "nothing left"


@pytest.mark.parametrize("path", ["/review/", "/review/grid/"])
def test_an_invalid_filter_value_is_named_beside_its_field_and_never_empties_the_queue(page, live_server, demo, path):
    page.goto(f"{live_server.url}{path}?dataset=dmeo&split=train")
    assert "dataset 'dmeo' does not exist (datasets: demo)" in _text(page, "label.invalid")
    body = _text(page, "main")
    assert "Nothing left" not in body and "No images shown: the filter has an invalid value" in body
    assert page.input_value("select[name=split]") == "train"  # the rest of the filter is kept

    page.goto(f"{live_server.url}{path}?dataset=demo&label=sad&min_suspicion=abc")
    assert "enter a number from 0 to 1" in _text(page, "label.invalid")
    assert page.input_value("select[name=label]") == "sad"
    assert "Nothing left" not in _text(page, "main")


def test_the_label_filter_takes_names_and_the_numbers_of_old_links(page, live_server, demo):
    page.goto(f"{live_server.url}/review/?dataset=demo&label=sad")
    settled(page)
    assert not page.query_selector("label.invalid")
    assert "reviewed 0 / 2 under this filter" in _text(page, "#card")
    first = card_id(page)
    page.goto(f"{live_server.url}/review/?dataset=demo&label=2")  # a link from before names
    assert "reviewed 0 / 2 under this filter" in _text(page, "#card") and card_id(page) == first
    page.goto(f"{live_server.url}/review/?dataset=demo&label=joyful")
    assert "unknown label 'joyful'" in _text(page, "label.invalid")


# 2. The site's own 404 page in the development settings (the demo's), naming what is missing and linking back


def test_a_wrong_address_shows_the_sites_404_naming_it_with_links_back(page, live_server, demo, settings):
    settings.DEBUG = True  # as the demo's settings have it (pytest-django turns it off): Django's technical pages
    for path, says in [("/datasets/demo/runs/compare/", "There is no page at /datasets/demo/runs/compare/."),
                       ("/datasets/nope/", "dataset 'nope' does not exist")]:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404
        assert page.title() == "Not found · FER label curation"
        assert says in _text(page, "main")
        assert "URLconf" not in page.content() and "DEBUG = True" not in page.content()
    page.click("main a:text('review queue')")
    page.wait_for_url(f"{live_server.url}/review/")


# 8. The key of the label the image already has confirms it, and says so


def test_the_key_of_the_current_label_confirms_and_says_confirmed(page, live_server, demo):
    anger = ImageFactory(dataset=demo, label=6, original_label=6, suspicion=0.99)
    page.goto(f"{live_server.url}/review/?dataset=demo")
    wait_card(page, anger.pk)
    page.keyboard.press("7")  # the 7th class in canonical order: anger, the label it has
    page.wait_for_selector("#card .notice-success")
    assert f"Image {anger.pk} confirmed." in _text(page, "#card .notice-success")
    anger.refresh_from_db()
    assert (anger.label, anger.status) == (6, Image.Status.CONFIRMED)
    assert [c.action for c in LabelChange.objects.filter(image=anger)] == ["confirm"]


# 12. The dataset page's queue-order line says its counts are those of the last scoring


def test_the_queue_order_line_says_its_counts_are_as_of_the_last_scoring(page, live_server, demo):
    from django.utils import timezone

    from curation.models import Job
    from tests.factories import JobFactory

    JobFactory(kind="score_ambiguity", status=Job.Status.SUCCEEDED, finished_at=timezone.now(),
               params={"dataset": "demo"},
               result={"dataset": "demo", "fusion": {"used": "default", "reviewed": 0, "changed": 0}})
    Image.objects.filter(pk=Image.objects.filter(dataset=demo).first().pk).update(status=Image.Status.CONFIRMED)
    page.goto(f"{live_server.url}/datasets/demo/")
    assert "1 of 5 reviewed" in _text(page, "#review-progress")
    line = _text(page, ".queue-order")
    assert "its counts are as of that scoring, not of now" in line and "(0 reviewed, 0 changed when it scored)" in line


# 17. The retrain form offers "none" as its doubtful rule; no page asks for a favicon that is not there


def test_the_retrain_form_offers_no_doubtful_rule_and_no_page_misses_a_favicon(live_server, transactional_db,
                                                                                browser, demo):
    from tests.factories import CuratorFactory

    cache.clear()
    CuratorFactory(username="carla")
    context = browser.new_context()
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    page = context.new_page()
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page, live_server, "carla", "/jobs/")
    page.goto(f"{live_server.url}/jobs/?start=retrain")
    options = page.eval_on_selector_all("select[name=retrain-doubtful] option", "os => os.map(o => o.value)")
    assert options == ["ssim", "classifier", "either", "none"]
    page.goto(f"{live_server.url}/review/?dataset=demo")
    icon = page.get_attribute("link[rel=icon]", "href")  # named, so Chromium does not ask for /favicon.ico
    assert page.request.get(f"{live_server.url}{icon}").status == 200
    assert page.request.get(f"{live_server.url}/favicon.ico").status == 200  # for a browser that asks anyway
    context.close()
    assert missing == [], missing


# 11. Grid tiles show the classifier's suggestion, with a legend and hover text for every figure


def test_grid_tiles_show_the_suggestion_with_a_legend_and_hover_text(page, live_server, demo):
    Image.objects.filter(dataset=demo, label=1).update(classifier_suggested_label=2, classifier_flagged=True)
    page.goto(f"{live_server.url}/review/grid/?dataset=demo&label=happy")
    tile = page.locator("li .tile-facts").first
    assert "→ sad" in tile.inner_text()
    assert page.get_attribute("li .tile-suggestion >> nth=0", "title") == "the classifier suggests sad"
    assert "suspicion" in page.get_attribute("li .tile-suspicion >> nth=0", "title")
    titles = tile.locator("span").evaluate_all("els => els.map(e => e.title)")
    assert len(titles) == 4 and all(titles), titles  # label, suspicion, suggestion, clf: each explained
    assert "the classifier's suggestion" in _text(page, "#tile-legend")


# 9. Two CycleGANs of one pair: the generators page says which one (and which epoch) scoring uses, a curator chooses
# the run explicitly, and scoring, generation and the review card all follow that choice


def _gan_run(dataset, media):
    from curation.models import GanModel
    from tests.factories import GanModelFactory

    gan = GanModelFactory(dataset=dataset, source_label=1, target_label=2, epoch=4, status=GanModel.Status.SUCCEEDED)
    losses = []
    for epoch in (1, 2, 3, 4):
        entry = {"epoch": epoch, "G_A": 1 / epoch, "samples": f"gans/{gan.pk}/samples/epoch{epoch:04d}.png"}
        if epoch in (2, 4):
            entry["generators"] = f"gans/{gan.pk}/generators/epoch{epoch:04d}.pt"
            (media / entry["generators"]).parent.mkdir(parents=True, exist_ok=True)
            (media / entry["generators"]).write_bytes(b"x")
        losses.append(entry)
    GanModel.objects.filter(pk=gan.pk).update(losses=losses, checkpoint=f"gans/{gan.pk}/last.pt")
    gan.refresh_from_db()
    return gan


def test_with_two_cyclegans_of_a_pair_a_curator_chooses_the_run_scoring_the_card_and_generation_use(
        live_server, transactional_db, browser, demo, settings):
    from pathlib import Path

    from curation.gans.generate_params import find_gan
    from curation.gans.snapshots import generator_snapshot, pair_generators
    from tests.factories import CuratorFactory, TransformScoreFactory

    media = Path(settings.MEDIA_ROOT)
    first, second = _gan_run(demo, media), _gan_run(demo, media)
    happy = Image.objects.filter(dataset=demo, label=1).order_by("-suspicion").first()
    TransformScoreFactory(image=happy, gan=first, epoch=2, ssim=0.7, z=0.5)
    TransformScoreFactory(image=happy, gan=second, epoch=4, ssim=0.8, z=1.5)  # the newer run scores higher
    cache.clear()
    CuratorFactory(username="carla")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    page = log_in(context.new_page(), live_server, "carla", "/datasets/demo/generators/")

    row = _text(page, "#pair-generators tbody tr")
    assert f"CycleGAN {second.pk} epoch 4 (the last) the newest finished of the pair's 2 CycleGANs" in row, row
    assert f"use CycleGAN {second.pk} (epoch 4) for happy ↔ sad" in _text(page, f"#gan-{first.pk} .scoring-epoch")

    page.select_option(f"#gan-{first.pk} form.pick-epoch select[name=epoch]", "2")
    page.click(f"#gan-{first.pk} form.pick-epoch button[type=submit]")
    page.wait_for_selector(".notice-success")
    row = _text(page, "#pair-generators tbody tr")
    assert f"CycleGAN {first.pk} epoch 2 chosen by a curator of the pair's 2 CycleGANs" in row, row
    assert f"this CycleGAN ({first.pk}) for happy ↔ sad (chosen by a curator)" in _text(page, f"#gan-{first.pk}")
    assert f"use CycleGAN {first.pk} (epoch 2)" in _text(page, f"#gan-{second.pk} .scoring-epoch")

    # What the page says is what the product does: scoring and generation take the chosen run and epoch ...
    assert [g.pk for g in pair_generators(demo)] == [first.pk]
    assert generator_snapshot(pair_generators(demo)[0])[1] == 2
    assert find_gan(demo, 2, 1)[0].pk == first.pk
    # ... and the review card shows the chosen run's transformation first, the other marked as not used now.
    page.goto(f"{live_server.url}/review/?dataset=demo")
    wait_card(page, happy.pk)
    rows = [re.sub(r"\s+", " ", t) for t in page.locator("table.transformations tr td:first-child").all_inner_texts()]
    assert rows[0].startswith(f"CycleGAN #{first.pk} G_A happy→sad (epoch 2)") and "not used" not in rows[0], rows
    assert rows[1].startswith(f"CycleGAN #{second.pk}") and rows[1].endswith("not used now"), rows
    context.close()
