"""The jobs page and the run comparison in a real browser (Playwright for Python driving the system Chromium)
against pytest-django's live server, with a real Celery worker running the jobs the page starts."""
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache

from curation.models import Job, Run
from tests.browser import log_in
from tests.factories import CuratorFactory, DatasetFactory, ImageFactory, RunFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture
def curator_page(live_server, transactional_db, browser):
    """A curator logged in through the log-in form, in a browser context of their own."""
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    CuratorFactory(username="carla")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = log_in(context.new_page(), live_server, "carla", "/jobs/")
    yield page
    context.close()


def _start_training(page, live_server, dataset, *, epochs, form="train"):
    page.goto(f"{live_server.url}/jobs/?start={form}")
    scope = f"#start-{form}"
    page.select_option(f"{scope} select[name={form}-dataset]", dataset)
    if form == "train":
        page.select_option(f"{scope} select[name=train-arch]", "small_cnn")
        page.fill(f"{scope} input[name=train-batch_size]", "32")
    page.fill(f"{scope} input[name={form}-epochs]", str(epochs))
    before = set(Job.objects.values_list("pk", flat=True))
    page.click(f"{scope} button[type=submit]")
    page.wait_for_selector(".notice-success")
    (job_id,) = set(Job.objects.values_list("pk", flat=True)) - before
    return job_id


@pytest.mark.worker
def test_a_curator_cancels_a_long_training_then_watches_a_small_one_reach_done(
        curator_page, live_server, start_worker, tmp_path):
    from tests.curation.test_classifier import square_dataset

    page = curator_page
    name = square_dataset(tmp_path, n=160)
    start_worker()

    long_job = _start_training(page, live_server, name, epochs=500)
    row = f"#job-{long_job}"
    # The row polls itself: the worker's progress messages appear without a reload.
    page.wait_for_selector(f"{row}[data-status=running] .message:has-text('epoch')", timeout=120_000)
    page.click(f"{row} button.cancel")
    page.wait_for_selector(f"{row}[data-status=cancelled]", timeout=60_000)
    assert Job.objects.get(pk=long_job).status == Job.Status.CANCELLED
    assert not page.is_visible(f"{row} button.cancel")

    small_job = _start_training(page, live_server, name, epochs=2)
    row = f"#job-{small_job}"
    page.wait_for_selector(f"{row}[data-status=succeeded]", timeout=240_000)
    assert page.get_attribute(f"{row} .bar span", "style") == "width:100%"
    assert page.inner_text(f"{row} .message") == "done"
    assert Run.objects.get(job_id=small_job).status == Run.Status.SUCCEEDED
    # The finished rows stopped polling: nothing on the page asks the server again.
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.wait_for_timeout(2500)
    assert not [u for u in requests if "/row/" in u]


def _metrics(accuracy, confusion):
    return {"accuracy": accuracy, "macro_f1": accuracy - 0.05, "precision": [0.5] * 8, "recall": [0.5] * 8,
            "support": [sum(r) for r in confusion], "confusion": confusion}


def test_a_curator_compares_two_runs_and_opens_a_confusion_cell_in_the_review_queue(curator_page, live_server):
    ds = DatasetFactory(name="faces")
    ImageFactory(dataset=ds, split="test", label=3, original_label=3)
    confusion = [[0] * 8 for _ in range(8)]
    confusion[3][3], confusion[3][4] = 6, 4  # surprise taken for fear
    history = [{"epoch": e, "val_acc": 0.3 + e / 20, "val_loss": 2 - e / 5, "train_acc": 0.3, "train_loss": 2}
               for e in (1, 2, 3)]
    old, new = (RunFactory(dataset=ds, arch="small_cnn", status=Run.Status.SUCCEEDED, history=history,
                           test_split_hash="h", reduced=reduced, test_metrics=_metrics(acc, confusion))
                for reduced, acc in ((False, 0.40), (True, 0.47)))
    page = curator_page
    page.goto(f"{live_server.url}/datasets/faces/runs/")
    page.check(f"input[name=ids][value='{new.pk}']")
    page.check(f"input[name=ids][value='{old.pk}']")
    page.click("form.runs button[type=submit]")
    page.wait_for_selector("#summary")
    assert f"Baseline: run {old.pk}." in page.inner_text("main")
    assert "+0.070" in page.inner_text("tr[data-metric=accuracy]")

    page.click(f"figure.confusion[data-run='{new.pk}'] a[data-true='3'][data-predicted='4']")
    page.wait_for_url("**/review/**")
    url = urlsplit(page.url)
    assert url.path == "/review/"
    assert parse_qs(url.query) == {"dataset": ["faces"], "split": ["test"], "label": ["surprise"],
                                   "run": [str(new.pk)], "predicted": ["fear"], "status": ["any"]}
