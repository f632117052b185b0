"""The review queue in a real browser: Playwright for Python driving the system Chromium (Debian's `chromium`,
installed by .ci/run; no browser is downloaded) against pytest-django's live server."""

import pytest
from django.core.cache import cache

from curation.models import Image, LabelChange
from curation.services import image_label_change
from tests.browser import log_in
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture
def site(live_server, transactional_db, browser):
    """Log a reviewer in through the log-in form in a browser context of their own; returns their page."""
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    contexts = []

    def login(username):
        UserFactory(username=username)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        # The test images have no files on disk: every image is the same small face.
        context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
        contexts.append(context)
        page = log_in(context.new_page(), live_server, username, "/review/")
        page.wait_for_selector("body[data-keys=ready]", state="attached")
        return page

    yield login
    for context in contexts:
        context.close()


def _png():
    import io

    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), (200, 170, 150)).save(out, format="PNG")
    return out.getvalue()


def card_id(page):
    page.wait_for_selector("#card[data-image-id]")
    return int(page.get_attribute("#card", "data-image-id"))


def wait_card(page, pk):
    page.wait_for_selector(f'#card[data-image-id="{pk}"]')
    settled(page)


def settled(page):
    """Wait until htmx has processed the swapped content: keys pressed before that are dropped."""
    page.wait_for_selector("body[data-keys=ready]", state="attached")


def test_relabel_with_a_key_undo_and_confirm_with_enter(site):
    ds = DatasetFactory(name="faces")
    x = ImageFactory(dataset=ds, suspicion=0.9, label=1, original_label=1)
    y = ImageFactory(dataset=ds, suspicion=0.5)
    page = site("alice")
    wait_card(page, x.pk)

    page.keyboard.press("4")  # the 4th class in canonical order: surprise (code 3)
    wait_card(page, y.pk)
    x.refresh_from_db()
    assert (x.label, x.status) == (3, Image.Status.RELABELLED)

    page.keyboard.press("u")
    wait_card(page, x.pk)
    x.refresh_from_db()
    assert (x.label, x.status) == (1, Image.Status.UNREVIEWED)

    page.keyboard.press("?")
    assert page.is_visible("dialog#keys")
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#keys", state="hidden")
    page.keyboard.press("Enter")
    wait_card(page, y.pk)
    x.refresh_from_db()
    assert (x.label, x.status, x.reviewed_by.username) == (1, Image.Status.CONFIRMED, "alice")
    changes = LabelChange.objects.filter(image=x).order_by("id")
    assert [c.action for c in changes] == ["relabel", "undo", "confirm"]
    assert all(c.seconds_spent is not None for c in changes if c.action != "undo")


def test_a_double_click_or_a_held_key_records_one_decision(site):
    ds = DatasetFactory(name="faces")
    images = [ImageFactory(dataset=ds, suspicion=s) for s in (0.9, 0.8, 0.7, 0.6)]
    page = site("alice")
    wait_card(page, images[0].pk)
    page.dblclick("button[value=confirm]")
    wait_card(page, images[1].pk)
    for _ in range(5):  # auto-repeat: one keydown, then repeats
        page.keyboard.down("x")
    page.keyboard.up("x")
    wait_card(page, images[2].pk)
    page.wait_for_timeout(500)  # time for a second request to land, if one had been sent
    assert LabelChange.objects.count() == 2
    assert card_id(page) == images[2].pk


def test_two_reviewers_never_get_the_same_image(site):
    ds = DatasetFactory(name="faces")
    for s in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
        ImageFactory(dataset=ds, suspicion=s)
    alice, bob = site("alice"), site("bob")
    seen_a, seen_b = [card_id(alice)], [card_id(bob)]
    assert seen_a[0] != seen_b[0]
    for _ in range(2):
        alice.keyboard.press("c")
        alice.wait_for_selector(f'#card:not([data-image-id="{seen_a[-1]}"])')
        settled(alice)
        seen_a.append(card_id(alice))
        assert seen_a[-1] != seen_b[-1]
        bob.keyboard.press("c")
        bob.wait_for_selector(f'#card:not([data-image-id="{seen_b[-1]}"])')
        settled(bob)
        seen_b.append(card_id(bob))
        assert seen_b[-1] != seen_a[-1]
    assert not set(seen_a) & set(seen_b)
    assert LabelChange.objects.count() == 4 and len(set(LabelChange.objects.values_list("image", flat=True))) == 4


def test_a_stale_decision_shows_the_conflict_and_overwrites_nothing(site):
    ds = DatasetFactory(name="faces")
    x = ImageFactory(dataset=ds, suspicion=0.9)
    page = site("alice")
    wait_card(page, x.pk)
    # Meanwhile someone else decides the same image (an admin, or a reviewer after alice's lease ran out).
    image_label_change(image_id=x.pk, action="exclude", expected_version=1, user=UserFactory(username="bob"))
    page.keyboard.press("2")
    page.wait_for_selector(".notice-error")
    assert "Conflict" in page.inner_text(".notice-error")
    assert "nothing was overwritten" in page.inner_text(".notice-error")
    x.refresh_from_db()
    assert (x.status, x.label, x.version, x.reviewed_by.username) == (Image.Status.EXCLUDED, 1, 2, "bob")
    assert LabelChange.objects.filter(image=x).count() == 1


def test_z_or_a_click_zooms_the_image(site):
    ds = DatasetFactory(name="faces")
    x = ImageFactory(dataset=ds, suspicion=0.9)
    page = site("alice")
    wait_card(page, x.pk)
    page.keyboard.press("z")
    page.wait_for_selector("#card figure.zoomed")
    assert page.eval_on_selector("#card figure img", "img => img.getBoundingClientRect().width") > 700
    page.click("#card figure img")
    page.wait_for_selector("#card figure:not(.zoomed)")
    assert not LabelChange.objects.exists()


def test_the_grid_relabels_a_selection(site, live_server):
    ds = DatasetFactory(name="faces")
    images = [ImageFactory(dataset=ds, suspicion=1 - i / 10, path=f"happy/{i}.png") for i in range(6)]
    ImageFactory(dataset=ds, suspicion=0.99, label=2, original_label=2)  # another class: not in this grid
    page = site("alice")
    page.goto(f"{live_server.url}/review/grid/?dataset=faces&label=1")
    page.wait_for_selector("body[data-keys=ready]", state="attached")
    tiles = page.locator("#grid label.tile")
    assert tiles.count() == 6
    tiles.nth(0).click()
    tiles.nth(2).click(modifiers=["Shift"])  # the range 0-2
    page.keyboard.press("ArrowRight")  # focus moves from tile 2 to tile 3
    page.keyboard.press("ArrowRight")  # and to 4
    page.keyboard.press(" ")  # selects 4
    assert page.inner_text("#grid .selected-count") == "4 selected"
    page.keyboard.press("3")  # relabel the selection to sad (code 2)
    page.wait_for_selector(".notice-success")
    settled(page)
    assert "4 images relabelled to sad" in page.inner_text(".notice-success")
    relabelled = {images[i].pk for i in (0, 1, 2, 4)}
    for image in Image.objects.filter(dataset=ds, label__in=(1, 2)).exclude(original_label=2):
        assert (image.label, image.status) == ((2, "relabelled") if image.pk in relabelled else (1, "unreviewed"))
    assert sorted(LabelChange.objects.values_list("image_id", flat=True)) == sorted(relabelled)
    assert page.locator("#grid label.tile").count() == 2

    page.keyboard.press("a")  # all that is left
    assert page.inner_text("#grid .selected-count") == "2 selected"
    page.keyboard.press("x")
    page.wait_for_selector("#grid p.empty")
    assert set(Image.objects.filter(pk__in=[images[3].pk, images[5].pk]).values_list("status", flat=True)) == {
        "excluded"}
    assert LabelChange.objects.count() == 6
