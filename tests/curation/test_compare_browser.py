"""The run comparison's deltas in a real browser (Playwright driving the system Chromium against pytest-django's live
server): a delta is green or red only when McNemar's exact test on the runs' per-image test predictions says so,
grey otherwise, and grey when a run kept no predictions. Colours are read as the browser computed them."""

import numpy as np
import pytest
from django.core.cache import cache

from curation.classifier.predictions import run_predictions_path
from curation.models import Run
from tests.browser import log_in
from tests.factories import DatasetFactory, RunFactory, UserFactory
from training.metrics import classification_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N = 200
IDS = np.arange(1000, 1000 + N)
LABELS = IDS % 8  # 25 test faces of each class
GREEN, RED = "rgb(8, 127, 35)", "rgb(176, 0, 32)"


def _run(dataset, right, *, keep_predictions=True):
    """A finished run whose test predictions are right exactly on the images where `right` is True (wrong ones
    are taken for the next class), its metrics computed from them as the training job does."""
    predicted = np.where(right, LABELS, (LABELS + 1) % 8)
    run = RunFactory(dataset=dataset, status=Run.Status.SUCCEEDED, test_split_hash="same",
                     test_metrics=classification_report(LABELS, predicted, 8))
    if keep_predictions:
        path = run_predictions_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        probs = np.full((N, 8), 0.01, dtype=np.float32)
        probs[np.arange(N), predicted] = 0.93
        np.savez(path, ids=IDS, labels=LABELS, probs=probs)
    return run


@pytest.fixture
def runs(transactional_db):
    ds = DatasetFactory(name="faces")
    index = np.arange(N)
    base = _run(ds, index < 100)  # right on 100 of 200
    noise = _run(ds, (index >= 8) & (index < 116))  # 108: 8 only the baseline got right, 16 only this one
    strong = _run(ds, index < 180)  # 180: the baseline's 100 and 80 more
    weak = _run(ds, (index >= 40) & (index < 100))  # 60: 40 fewer than the baseline, none it missed
    unpaired = _run(ds, index < 180, keep_predictions=False)  # a big gain, but no per-image predictions kept
    return base, noise, strong, weak, unpaired


@pytest.fixture
def page(live_server, browser, runs):
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    UserFactory(username="rita")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    ids = ",".join(str(r.pk) for r in runs)
    page = log_in(context.new_page(), live_server, "rita", f"/runs/compare/?ids={ids}")
    yield page
    context.close()


def _delta(page, run, row="tr[data-metric=accuracy]"):
    """(text, class list, computed colour, title) of the accuracy (or `row`'s) delta of `run`."""
    return page.eval_on_selector(
        f"{row} td[data-run='{run.pk}'] .delta",
        "e => [e.textContent, [...e.classList], getComputedStyle(e).color, e.title]")


def test_only_significant_accuracy_deltas_are_coloured(page, runs):
    base, noise, strong, weak, unpaired = runs
    text, classes, colour, title = _delta(page, noise)
    assert text == "+0.040"  # 54.0 % against 50.0 %: on 200 faces, noise
    assert "delta-noise" in classes and colour not in (GREEN, RED)
    assert f"n={N} " in title and "b=8 " in title and "c=16 " in title and "p=0.152" in title
    assert "not distinguishable from noise" in title

    text, classes, colour, title = _delta(page, strong)
    assert text == "+0.400" and "up" in classes and colour == GREEN
    assert "b=0 " in title and "c=80 " in title and "p=1.7e-24" in title

    text, classes, colour, title = _delta(page, weak)
    assert text == "-0.200" and "down" in classes and colour == RED
    assert "b=40 " in title and "c=0 " in title

    text, classes, colour, title = _delta(page, unpaired)
    assert text == "+0.400" and "delta-noise" in classes and colour not in (GREEN, RED)
    assert f"run {unpaired.pk} kept no per-image test predictions" in title and "p=" not in title
    assert "not tested" in page.inner_text(f"tr[data-metric=accuracy] td[data-run='{unpaired.pk}']")

    # Each accuracy carries its 95 % Wilson interval on its 200 test faces.
    cell = page.inner_text(f"tr[data-metric=accuracy] td[data-run='{base.pk}']")
    assert "50.0 %" in cell and "95 % CI 43.1–56.9 %, n=200" in cell


def test_a_class_recall_delta_is_tested_on_that_class_alone(page, runs):
    base, noise, strong, weak, unpaired = runs
    # neutral (class 0): 25 faces; the baseline gets 13 right, the strong run 23 (c=10, b=0, p=0.002)
    cells = page.eval_on_selector_all(
        "tr[data-class=neutral] td .delta", "els => els.map(e => [e.textContent, getComputedStyle(e).color, e.title])")
    by_title = {title.split(" only run ")[-1].split(" ")[0]: (t, c) for t, c, title in cells if "only run" in title}
    assert by_title[str(strong.pk)] == ("+0.400", GREEN)
    assert by_title[str(noise.pk)][1] not in (GREEN, RED)
    assert all("neutral test images" in title for _, _, title in cells if "McNemar" in title)


def test_macro_f1_and_precision_deltas_are_tested_by_randomisation(page, runs):
    base, noise, strong, weak, unpaired = runs
    f1 = "tr[data-metric=macro_f1]"
    text, classes, colour, title = _delta(page, strong, f1)
    assert text.startswith("+0.") and "up" in classes and colour == GREEN
    assert "paired randomisation test (1000 rounds" in title and f"n={N} " in title and "p=0.001" in title
    text, classes, colour, title = _delta(page, weak, f1)
    assert text.startswith("-0.") and "down" in classes and colour == RED
    text, classes, colour, title = _delta(page, noise, f1)
    assert "delta-noise" in classes and colour not in (GREEN, RED) and "not distinguishable from noise" in title
    text, classes, colour, title = _delta(page, unpaired, f1)
    assert "delta-noise" in classes and "kept no per-image test predictions" in title
    # every precision delta says which test drew it
    precisions = page.eval_on_selector_all(
        "tr[data-class=neutral] td:nth-child(odd) .delta", "els => els.map(e => [[...e.classList], e.title])")
    assert precisions and all("randomisation" in t or "kept no" in t for _, t in precisions)


def test_per_class_deltas_are_holm_corrected_and_the_page_says_so(live_server, browser, transactional_db):
    """A recall gain on one class with McNemar's p = 0.031 alone is one of 16 per-class tests: after Holm's
    correction it is noise, grey (issue 35)."""
    ds = DatasetFactory(name="faces")
    index = np.arange(N)
    base = _run(ds, index < 100)
    one_class = _run(ds, (index < 100) | np.isin(index, [104, 112, 120, 128, 136, 144]))  # 6 more neutral faces
    cache.clear()
    UserFactory(username="rita")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = log_in(context.new_page(), live_server, "rita", f"/runs/compare/?ids={base.pk},{one_class.pk}")
    text, classes, colour, title = page.eval_on_selector(
        "tr[data-class=neutral] td:nth-child(2n+2) .delta",
        "e => [e.textContent, [...e.classList], getComputedStyle(e).color, e.title]")
    context_note = page.inner_text("#per-class-correction")
    context.close()
    assert text == "+0.240" and "p=0.031" in title  # the test alone: below 0.05
    assert "delta-noise" in classes and colour not in (GREEN, RED)
    assert "Holm-adjusted over this run's 16 per-class tests: p=0.496" in title
    assert "Holm's correction" in context_note
