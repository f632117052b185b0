"""The retrain form and the run comparison in a real browser (Playwright driving the system Chromium under the site's
content security policy, against pytest-django's live server; a real Celery worker where jobs run):

- item 4 of issue 35: the form previews what a retrain drops, relabels, trusts and adds, starts on a doubtful rule
  that flags images, and says in the page's words when a rule would drop nothing;
- item 3: "Augmented" without generated images says so without command-line words and offers "Generate, then
  retrain", a chained job whose retrain starts only after the generation succeeded;
- item 5: a significant loss in the comparison names the training-set change that most likely caused it and links
  the retrain without it.
"""
import numpy as np
import pytest
from django.core.cache import cache

from curation.classifier.predictions import run_predictions_path
from curation.models import GanModel, GeneratedImage, Image, Job, Run
from tests.browser import log_in
from tests.conftest import wait_for
from tests.factories import (
    CuratorFactory,
    DatasetFactory,
    GanModelFactory,
    GeneratedImageFactory,
    ImageFactory,
    RunFactory,
)
from training.metrics import classification_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def curator_page(live_server, transactional_db, browser):
    """A curator logged in through the log-in form; `page.csp` collects the console's CSP violations."""
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    CuratorFactory(username="carla")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.csp = []
    page.on("console", lambda m: page.csp.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, live_server, "carla", "/jobs/")
    yield page
    context.close()


def _preview(page):
    return page.inner_text("#retrain-preview")


def test_the_retrain_form_previews_its_effect_and_starts_on_a_rule_that_flags_images(curator_page, live_server):
    page = curator_page
    ds = DatasetFactory(name="flags")
    train = [ImageFactory(dataset=ds, original_label=k % 8, label=k % 8) for k in range(30)]
    for split in ("val", "val", "test", "test"):
        ImageFactory(dataset=ds, split=split)
    Image.objects.filter(pk__in=[i.pk for i in train[:6]]).update(classifier_flagged=True)  # cleanlab's, no SSIM flag
    Image.objects.filter(pk=train[10].pk).update(status=Image.Status.EXCLUDED)

    page.goto(f"{live_server.url}/jobs/?start=retrain&dataset=flags")
    # No rule: the SSIM rule flags nothing here, and the classifier's flags, dropped unreviewed, cost accuracy.
    assert page.input_value("select[name=retrain-doubtful]") == "none"
    assert "the SSIM rule flags no unreviewed image of flags" in page.inner_text("#doubtful-why")
    assert "29 train images" in _preview(page)  # 30 - 1 excluded

    # The published rule, chosen by name: the preview (htmx, on change) says it drops nothing, in the page's words.
    page.select_option("select[name=retrain-doubtful]", "ssim")
    warning = page.wait_for_selector("#retrain-preview [data-problem=doubtful_flags_none]").inner_text()
    assert "The SSIM rule flags no unreviewed image of flags, so Reduced drops only the images reviewers " \
           "excluded" in warning and "the classifier's flags would drop 6" in warning and "--" not in warning
    assert "29 train images" in _preview(page)

    page.select_option("select[name=retrain-doubtful]", "classifier")
    page.wait_for_selector("#retrain-preview [data-problem=doubtful_flags_none]", state="detached")
    text = _preview(page)
    assert "23 train images" in text  # 30 - 1 excluded - 6 flagged
    assert "Drops 1 excluded image and 6 unreviewed images flagged by the classifier's flags" in text

    # Opened from the closed list of forms, the form loads its preview when it opens.
    page.goto(f"{live_server.url}/jobs/?dataset=flags")
    assert page.locator("#retrain-preview li").count() == 0
    page.click("#start-retrain summary")
    page.wait_for_selector("#retrain-preview li[data-preview=train]:has-text('29 train images')")
    assert page.csp == []


@pytest.mark.worker
def test_augmented_without_generated_images_offers_generate_then_retrain(curator_page, live_server, start_worker,
                                                                         tmp_path):
    import io

    from django.core.management import call_command

    from tests.curation.conftest import square_gan_dataset

    page = curator_page
    name = square_gan_dataset(tmp_path)  # a happy/sad CycleGAN (unchecked: no classifier when it trained)
    call_command("train_classifier", "--dataset", name, "--arch", "small_cnn", "--epochs", "1", "--size", "32",
                 "--batch-size", "32", "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    start_worker()

    page.goto(f"{live_server.url}/jobs/?start=retrain&dataset={name}")
    page.check("input[name=retrain-augmented]")
    warning = page.wait_for_selector("#retrain-preview [data-problem=no_generated]").inner_text()
    assert f"Augmented adds generated images, and {name} has none yet" in warning and "happy ↔ sad" in warning
    assert "--" not in warning and "generate_images" not in _preview(page)
    assert "Adds 0 generated images" in _preview(page)

    page.click("#retrain-preview button[value=generate_retrain]")
    notice = page.wait_for_selector(".notice-success").inner_text()
    assert "it generates images, then retrains" in notice
    chain = Job.objects.get(kind="generate_retrain")
    wait_for(lambda: Job.objects.get(pk=chain.pk).is_finished, timeout=300, interval=0.5, what="the chained job")
    chain.refresh_from_db()
    assert chain.status == Job.Status.SUCCEEDED, chain.error
    generate = Job.objects.get(parent=chain, kind="generate_images")
    retrain = Job.objects.get(parent=chain, kind="train_classifier")
    assert generate.status == Job.Status.SUCCEEDED and retrain.created_at >= generate.finished_at
    run = Run.objects.get(pk=chain.result["run"])
    made = GeneratedImage.objects.filter(gan__dataset__name=name).count()
    assert run.augmented and made > 0 and run.selection["generated"] == made
    # The same form now previews what the run added.
    page.goto(f"{live_server.url}/jobs/?start=retrain&dataset={name}")
    page.check("input[name=retrain-augmented]")
    page.wait_for_selector(f"#retrain-preview [data-count=generated]:has-text('{made}')")
    assert page.csp == []


N = 200
IDS = np.arange(1000, 1000 + N)
LABELS = IDS % 8


def _run(dataset, right, **fields):
    """A finished run right exactly where `right` is True, with per-image test predictions (as the compare tests)."""
    predicted = np.where(right, LABELS, (LABELS + 1) % 8)
    run = RunFactory(dataset=dataset, status=Run.Status.SUCCEEDED, test_split_hash="same",
                     test_metrics=classification_report(LABELS, predicted, 8), **fields)
    path = run_predictions_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    probs = np.full((N, 8), 0.01, dtype=np.float32)
    probs[np.arange(N), predicted] = 0.93
    np.savez(path, ids=IDS, labels=LABELS, probs=probs)
    return run


def test_a_significant_loss_names_its_likely_cause_and_links_the_retrain_without_it(curator_page, live_server):
    page = curator_page
    ds = DatasetFactory(name="faces")
    source = ImageFactory(dataset=ds)
    quality = {"AB": {"target_rate": 0.52, "source_target_rate": 0.2},
               "BA": {"target_rate": 0.79, "source_target_rate": 0.1}}
    gan = GanModelFactory(dataset=ds, status=GanModel.Status.SUCCEEDED, epoch=1,
                          losses=[{"epoch": 1, "quality": quality}])
    GeneratedImageFactory(gan=gan, source_image=source)
    index = np.arange(N)
    base = _run(ds, index < 150, selection={"train": 3000, "generated": 0, "relabelled": 0})
    worse = _run(ds, (index >= 40) & (index < 150), reduced=True, augmented=True,
                 selection={"train": 3209, "generated": 200, "relabelled": 9, "dropped_flagged_unconfirmed": 0,
                            "doubtful": "ssim"})
    noise = _run(ds, (index >= 4) & (index < 150), augmented=True, selection={"train": 3200, "generated": 200})

    page.goto(f"{live_server.url}/runs/compare/?ids={base.pk},{worse.pk},{noise.pk}")
    cause = page.inner_text(f".loss-cause[data-run='{worse.pk}']")
    assert f"Run {worse.pk} is significantly worse than run {base.pk}" in cause
    assert "Most likely cause: 200 generated images added: generators passed their quality check with 52%-79% " \
           "target rates" in cause
    assert page.locator(f".loss-cause[data-run='{noise.pk}']").count() == 0  # a loss within the noise: no claim

    page.click(f".loss-cause[data-run='{worse.pk}'] a.without")
    page.wait_for_selector("#start-retrain[open]")
    assert page.input_value("select[name=retrain-dataset]") == "faces"
    assert page.is_checked("input[name=retrain-reduced]") and not page.is_checked("input[name=retrain-augmented]")
    assert page.input_value("select[name=retrain-doubtful]") == "ssim"
    assert page.csp == []
