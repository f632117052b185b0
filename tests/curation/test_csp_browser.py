"""The Content-Security-Policy in a real browser: every main page (log-in, home, dataset with its charts, health
report, calibration, runs, generators, disputes, jobs with a running job's bar, the review queue with a decision by
keyboard, the grid, the run comparison's heat map, and the API docs' Swagger UI and Redoc) carries the header and works under it with no violation reported, neither in the
console nor as a securitypolicyviolation event."""
import io

import pytest
from django.core.cache import cache

from curation.models import Image, Job, LabelChange, Run
from tests.browser import log_in
from tests.factories import CuratorFactory, DatasetFactory, ImageFactory, JobFactory, RunFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Recorded from the first script of every page, before the page's own (Playwright's init scripts are not subject
# to the page's policy).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


def _png():
    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), (200, 170, 150)).save(out, format="PNG")
    return out.getvalue()


def _metrics(acc):
    confusion = [[0] * 8 for _ in range(8)]
    confusion[0][0], confusion[0][1] = 7, 3
    return {"accuracy": acc, "macro_f1": acc - 0.1, "precision": [0.6] * 8, "recall": [0.5] * 8,
            "support": [10] * 8, "confusion": confusion}


@pytest.fixture
def curator_page(live_server, transactional_db, browser):
    """A curator logged in through the log-in form; the page records console messages and CSP violations."""
    cache.clear()  # the log-in throttle counts attempts per address in the cache
    CuratorFactory(username="carla")
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    # The live server serves no media (DEBUG is off in tests): every image is the same small face.
    context.route("**/media/**", lambda route: route.fulfill(body=_png(), content_type="image/png"))
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda m: page.console_messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_messages.append(f"pageerror: {e}"))
    yield page
    context.close()


def _visit(page, url, *, ready):
    """Open `url`, wait for `ready` (a selector only the working page shows), and return the response."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.console_messages.clear()
    response = page.goto(url)
    assert response.status == 200, (url, response.status)
    try:
        page.wait_for_selector(ready)
    except PlaywrightTimeout:
        raise AssertionError((url, page.console_messages, page.evaluate("window.__cspViolations"),
                              page.content()[:3000])) from None
    return response


# Redoc's sidebar always shows Redocly's logo from their CDN; the policy blocks it (nothing is fetched from another
# site) and Redoc hides the image. That one block is expected; any other is a failure.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _assert_clean(page, response, url, *, expected_block=None):
    policy = response.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives.get("default-src") == ["'self'"], (url, policy)
    # Scripts: this site's files, and inline ones only with the request's nonce (named when a page uses one).
    assert directives["script-src"][0] == "'self'", (url, policy)
    assert all(s.startswith("'nonce-") for s in directives["script-src"][1:]), (url, policy)
    page.wait_for_timeout(300)  # a late violation (a style injected after load) is reported asynchronously
    violations = [v for v in page.evaluate("window.__cspViolations")
                  if not (expected_block and v.startswith(f"img-src blocked {expected_block} "))]
    console = [m for m in page.console_messages if ("Content Security Policy" in m or "Content-Security-Policy" in m)
               and not (expected_block and expected_block in m)]
    assert not violations and not console, (url, violations, console)
    errors = [m for m in page.console_messages if m.startswith("pageerror")]
    assert not errors, (url, errors)


def test_the_main_pages_work_under_the_policy_with_no_violation(curator_page, live_server):
    page = curator_page
    ds = DatasetFactory(name="faces")
    first = ImageFactory(dataset=ds, suspicion=0.9, label=1, original_label=1)
    for s in (0.8, 0.7, 0.6):
        ImageFactory(dataset=ds, suspicion=s, label=1, original_label=1)
    ImageFactory(dataset=ds, split="test")
    ImageFactory(dataset=ds, label=2, original_label=1, status=Image.Status.RELABELLED)  # a heat map to draw
    base = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, test_metrics=_metrics(0.5), test_split_hash="a" * 64)
    cleaned = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, test_metrics=_metrics(0.6), reduced=True,
                         test_split_hash="a" * 64)
    job = JobFactory(kind="train_classifier", status=Job.Status.RUNNING, progress=0.42, message="epoch 2/5")

    response = _visit(page, f"{live_server.url}/login/", ready="input[name=username]")
    _assert_clean(page, response, "/login/")
    log_in(page, live_server, "carla", "/")

    pages = [
        ("/", "main h1"),
        ("/datasets/faces/", "svg.heat-map"),
        ("/datasets/faces/health/", "svg.class-bars"),
        ("/datasets/faces/calibration/", "main h1"),
        ("/datasets/faces/runs/", "main h1"),
        ("/datasets/faces/generators/", "main h1"),
        ("/review/disputes/", "main h1"),
        ("/jobs/?start=import", f"#job-{job.pk} .bar span"),
        (f"/runs/compare/?ids={base.pk},{cleaned.pk}", "td.diag"),
        ("/review/grid/", "body[data-keys=ready]"),
        ("/api/docs/", ".swagger-ui .info .title"),
        ("/api/redoc/", ".api-content h1"),
    ]
    for path, ready in pages:
        response = _visit(page, f"{live_server.url}{path}", ready=ready)
        _assert_clean(page, response, path, expected_block=REDOC_LOGO if path == "/api/redoc/" else None)
    # The style attributes the server writes (bar widths, heat colours) apply: the policy allows them.
    page.goto(f"{live_server.url}/jobs/")
    width = page.evaluate(f"getComputedStyle(document.querySelector('#job-{job.pk} .bar span')).width")
    assert width != "auto" and float(width.rstrip("px")) > 0

    response = _visit(page, f"{live_server.url}/review/", ready=f'#card[data-image-id="{first.pk}"]')
    page.wait_for_selector("body[data-keys=ready]", state="attached")
    page.keyboard.press("Enter")  # confirm, by keyboard: htmx swaps in the next card
    page.wait_for_selector(f'#card[data-image-id]:not([data-image-id="{first.pk}"])')
    first.refresh_from_db()
    assert first.status == Image.Status.CONFIRMED
    assert LabelChange.objects.filter(image=first, action="confirm").exists()
    _assert_clean(page, response, "/review/")
