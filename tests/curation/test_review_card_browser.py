"""The review card and the dataset page in a real browser (Playwright for Python driving the system Chromium, against
pytest-django's live server): the `a` key accepts the classifier's suggestion, the reference strip shows typical
faces of the label and of the suggestion, hovering a figure explains it, the `?` dialog lists the guidelines; the
dataset page fits a 1,366 px wide screen without scrolling sideways."""
import numpy as np
import pytest
from django.core.cache import cache

from curation.models import Dataset, Image, Job, LabelChange, Run
from curation.review.glossary import FIGURES
from tests.browser import log_in
from tests.curation.conftest import CONFIRMED, EXCLUDED, RELABELLED, reviewed_image
from tests.factories import CuratorFactory, DatasetFactory, ImageFactory, JobFactory, RunFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]
HAPPY, SAD = 1, 2


def _png():
    import io

    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), (200, 170, 150)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def open_page(live_server, transactional_db, browser):
    """Log `username` in (a curator when asked) at `path` in a browser context of its own, `width` px wide."""
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    contexts = []

    def open_(username, path, *, curator=False, width=1200):
        (CuratorFactory if curator else UserFactory)(username=username)
        context = browser.new_context(viewport={"width": width, "height": 900})
        # The live server serves no media (DEBUG is off in tests): every image is the same small face.
        context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
        contexts.append(context)
        return log_in(context.new_page(), live_server, username, path)

    yield open_
    for context in contexts:
        context.close()


def _probs(label, p):
    row = [(1 - p) / 7] * 8
    row[label] = p
    return row


def test_the_accept_key_the_reference_strip_the_explanations_and_the_guidelines(open_page, _media_root):
    ds = DatasetFactory(name="faces", guidelines={"happy": "Raised cheeks, teeth often showing.",
                                                  "sad": "Lip corners pulled down."})
    top = ImageFactory(dataset=ds, label=HAPPY, original_label=HAPPY, suspicion=0.99, label_quality=0.21,
                       classifier_flagged=True, classifier_suggested_label=SAD)
    after = ImageFactory(dataset=ds, label=HAPPY, original_label=HAPPY, suspicion=0.98)
    rows = [(top, HAPPY, _probs(SAD, 0.8)), (after, HAPPY, _probs(HAPPY, 0.3))]
    typical = {}
    for label in (HAPPY, SAD):
        for k in range(8):
            face = ImageFactory(dataset=ds, label=label, original_label=label, suspicion=0.1, status=CONFIRMED)
            rows.append((face, label, _probs(label, 0.5 + k * 0.05)))
            typical.setdefault(label, []).insert(0, face.pk)  # highest probability first
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, folds=3)
    (_media_root / "runs" / str(run.pk)).mkdir(parents=True)
    np.savez(_media_root / "runs" / str(run.pk) / "oof.npz", ids=np.array([r[0].pk for r in rows]),
             labels=np.array([r[1] for r in rows]), probs=np.array([r[2] for r in rows], dtype=np.float32))
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")

    page = open_page("rita", "/review/?dataset=faces")
    page.wait_for_selector(f'#card[data-image-id="{top.pk}"]')
    page.wait_for_selector("body[data-keys=ready]", state="attached")

    # The strip: five typical faces of happy, then five of sad, loaded and side by side beside the image.
    for label, name in ((HAPPY, "happy"), (SAD, "sad")):
        faces = page.locator(f'.reference-row[data-label="{name}"] img.reference')
        assert faces.count() == 5
        assert [int(faces.nth(i).get_attribute("data-image-id")) for i in range(5)] == typical[label][:5]
        for i in range(5):
            box = faces.nth(i).bounding_box()
            assert box["width"] == 72 and box["height"] == 72
            assert faces.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
    # Hover explains a figure: the row's title is the glossary's line.
    row = page.locator("table.scores tr", has_text=FIGURES["classifier_confidence"][0])
    assert row.get_attribute("title") == FIGURES["classifier_confidence"][1]
    assert "0.210 (prefers another class)" in row.inner_text()
    assert "Guideline for sad: Lip corners pulled down." in page.inner_text("#card .facts")

    # `?`: the keys, with `a`, every figure's explanation and the dataset's guidelines.
    page.keyboard.press("?")
    dialog = page.locator("dialog#keys")
    assert dialog.is_visible()
    words = dialog.inner_text()
    assert "accept the classifier's suggestion (relabel to sad)" in words
    assert FIGURES["references"][1] in words and "Raised cheeks, teeth often showing." in words
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#keys", state="hidden")

    # `a`: relabelled to the suggestion, recorded like any decision, and the next card comes.
    assert page.inner_text("button[data-key=a]").startswith("a accept suggestion: relabel to sad")
    page.keyboard.press("a")
    page.wait_for_selector(f'#card[data-image-id="{after.pk}"]')
    top.refresh_from_db()
    assert (top.label, top.status, top.reviewed_by.username) == (SAD, Image.Status.RELABELLED, "rita")
    change = LabelChange.objects.get(image=top)
    assert (change.action, change.new_label) == ("relabel", SAD) and change.seconds_spent is not None
    assert "relabelled to sad" in page.inner_text("#card .notice-success")
    # On this one the classifier agrees with the label: `a` confirms it.
    page.wait_for_selector("body[data-keys=ready]", state="attached")
    assert page.inner_text("button[data-key=a]").startswith("a accept suggestion: confirm happy")
    page.keyboard.press("a")
    page.wait_for_selector("#card:not([data-image-id])")
    after.refresh_from_db()
    assert (after.label, after.status) == (HAPPY, Image.Status.CONFIRMED)


def test_the_dataset_page_fits_1366_px_and_says_what_a_class_needs_once(open_page):
    ds = DatasetFactory(name="faces", source="/srv/imports/" + "very_long_folder_name_" * 12 + "labels.csv",
                        reviews_required=2)
    # Reviews in every class, too few for a suggestion in most: the old page repeated the same sentence per class.
    for label in range(8):
        for k in range(6 if label else 25):
            reviewed_image(ds, label, (RELABELLED, EXCLUDED, CONFIRMED, CONFIRMED, CONFIRMED)[k % 5],
                           ambiguity=0.5 + k / 100, suspicion=0.2 + k / 100)
    for k in range(10):
        JobFactory(kind="score_ambiguity", params={"dataset": "faces", "threshold": 0.8},
                   status=Job.Status.FAILED, message="failed: /srv/" + "x" * 300)
    RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, test_metrics={"accuracy": 0.7}, folds=3, reduced=True)
    Dataset.objects.filter(pk=ds.pk).update(guidelines={"happy": "Cheeks " * 60})

    for username, curator in (("carla", True), ("rita", False)):
        page = open_page(username, "/datasets/faces/", curator=curator, width=1366)
        page.wait_for_selector("#jobs")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, (username, width)
        text = page.inner_text("main")
        assert text.count("20 reviewed images") == 1, username
        for heading in ("Overview", "Labels & review progress", "Runs", "Guidelines & review settings", "Jobs"):
            assert page.locator("h2", has_text=heading).count() == 1, heading
        assert "reviews_required" not in text and "job_params" not in text
