"""No 500 a signed-in user can cause (issue 32, item 4): numbers that are not finite or out of range are refused
with a message naming them, nothing of them is stored, pages render runs that have no metrics yet, paging accepts
any page parameter, names with control characters are a 404 or a 400, and the API answers in JSON even when
something unforeseen breaks. Run these against PostgreSQL too (DATABASE_URL): it refuses NUL in text where SQLite
does not, and its integers overflow where Python's do not."""
import math

import pytest
from django.test import Client
from rest_framework.test import APIClient

from curation.models import Image, LabelChange
from tests.factories import DatasetFactory, ImageFactory, RunFactory

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"


@pytest.fixture
def image():
    return ImageFactory(dataset=DatasetFactory(name="q"), suspicion=0.9, original_label=1, label=1)


# --- numbers in the decision API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1", "86401"])
def test_a_decision_with_a_non_finite_or_out_of_range_time_is_refused_and_nothing_is_stored(image, reviewer_api,
                                                                                          seconds):
    url = f"/api/images/{image.pk}/decision/"
    answer = reviewer_api.post(url, {"action": "confirm", "version": 1, "seconds_spent": seconds}, format="json")
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert body["code"] == "invalid" and "seconds_spent" in body["detail"]
    assert not LabelChange.objects.exists()
    assert Image.objects.get(pk=image.pk).status == Image.Status.UNREVIEWED
    assert reviewer_api.get(f"/api/images/{image.pk}/").status_code == 200


def test_a_decision_with_a_finite_time_is_stored(image, reviewer_api):
    url = f"/api/images/{image.pk}/decision/"
    answer = reviewer_api.post(url, {"action": "confirm", "version": 1, "seconds_spent": "2.5"}, format="json")
    assert answer.status_code == 200, answer.content
    assert LabelChange.objects.get().seconds_spent == 2.5


@pytest.mark.parametrize("version", [HUGE, str(2 ** 63), "1e3", "-5"])
def test_a_decision_with_a_huge_or_bad_version_is_refused(image, reviewer_api, version):
    answer = reviewer_api.post(f"/api/images/{image.pk}/decision/", {"action": "confirm", "version": version},
                               format="json")
    assert answer.status_code == 400, answer.content
    assert "version" in answer.json()["detail"]
    assert not LabelChange.objects.exists()


@pytest.mark.parametrize("path", [f"/api/images/{HUGE}/", f"/api/images/{HUGE}/decision/", f"/api/runs/{HUGE}/",
                                  f"/api/jobs/{HUGE}/", f"/api/jobs/{HUGE}/cancel/"])
def test_huge_ids_in_api_paths_are_json_404s(curator_api, path):
    answer = curator_api.post(path, {"action": "skip"}, format="json") if path.endswith(("decision/", "cancel/")) \
        else curator_api.get(path)
    assert answer.status_code == 404, answer.content
    assert answer["Content-Type"] == "application/json" and answer.json()["code"] == "not_found"


@pytest.mark.parametrize("query", ["min_suspicion=nan", "max_suspicion=inf", "min_suspicion=-Infinity",
                                   f"run={HUGE}", "run=-1"])
def test_image_filters_refuse_non_finite_numbers_and_huge_ids(image, reviewer_api, query):
    answer = reviewer_api.get(f"/api/images/?{query}")
    assert answer.status_code == 400, answer.content
    assert query.split("=")[0] in answer.json()["detail"]


@pytest.mark.parametrize("body", [{"min_suspicion": "nan"}, {"max_suspicion": "-inf"}, {"run": int(HUGE)}])
def test_review_next_refuses_non_finite_numbers_and_huge_ids(image, reviewer_api, body):
    answer = reviewer_api.post("/api/review/next/", {"dataset": "q", **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert next(iter(body)) in answer.json()["detail"]


@pytest.mark.parametrize("precision", ["nan", "inf", "-inf"])
def test_calibration_refuses_a_non_finite_precision(image, reviewer_api, precision):
    answer = reviewer_api.get(f"/api/datasets/q/calibration/?precision={precision}")
    assert answer.status_code == 400, answer.content
    assert "precision" in answer.json()["detail"]


@pytest.mark.parametrize("cursor", [HUGE, "-1", "x", "%00"])
def test_api_paging_parameters_never_500(image, reviewer_api, cursor):
    for url in (f"/api/images/?cursor={cursor}", f"/api/runs/?cursor={cursor}", f"/api/jobs/?cursor={cursor}",
                f"/api/images/?page_size={cursor}", f"/api/runs/?page={cursor}"):
        answer = reviewer_api.get(url)
        assert answer.status_code in (200, 400, 404), (url, answer.content)
        answer.json()


# --- numbers and pages in the browser's forms --------------------------------------------------------------------

@pytest.mark.parametrize("page", [HUGE, str(2 ** 63), "-1", "0", "x", "²", "1e3", ""])
def test_the_grid_takes_any_page_parameter(image, as_reviewer, page):
    answer = as_reviewer.get("/review/grid/", {"dataset": "q", "page": page})
    assert answer.status_code == 200
    assert answer.context["page"] >= 1


def test_a_grid_decision_with_a_huge_page_or_time_is_answered(image, as_reviewer):
    answer = as_reviewer.post("/review/grid/decide/", {"decision": "confirm", "pick": [f"{image.pk}:1"],
                                                       "page": HUGE, "shown_at": "nan", "dataset": "q"})
    assert answer.status_code in (200, 302, 400)


@pytest.mark.parametrize("pick", [f"{HUGE}:1", f"1:{HUGE}", "²:1"])
def test_a_grid_decision_with_huge_ids_or_versions_is_refused(image, as_reviewer, pick):
    answer = as_reviewer.post("/review/grid/decide/", {"decision": "confirm", "pick": [pick], "dataset": "q"},
                              follow=True)
    assert answer.status_code == 200
    assert not LabelChange.objects.exists()


@pytest.mark.parametrize("fields", [{"image_id": HUGE, "version": "1"}, {"version": HUGE},
                                    {"shown_at": "nan"}, {"shown_at": "inf"}, {"shown_at": "1e999"}])
def test_a_queue_decision_with_huge_or_non_finite_numbers_is_refused(image, as_reviewer, fields):
    data = {"image_id": str(image.pk), "version": "1", "decision": "confirm", "dataset": "q", **fields}
    answer = as_reviewer.post("/review/decide/", data, follow=True)
    assert answer.status_code in (200, 400, 409)
    assert not LabelChange.objects.filter(seconds_spent__isnull=False).exclude(seconds_spent__lte=3600).exists()
    for change in LabelChange.objects.all():
        assert change.seconds_spent is None or math.isfinite(change.seconds_spent)


@pytest.mark.parametrize("query", ["min_suspicion=nan", "max_suspicion=inf", f"run={HUGE}", "run=-1",
                                   f"predicted={HUGE}", f"label={HUGE}"])
def test_the_queue_and_grid_filters_refuse_bad_numbers_without_500(image, as_reviewer, query):
    for url in (f"/review/?dataset=q&{query}", f"/review/grid/?dataset=q&{query}"):
        assert as_reviewer.get(url).status_code in (200, 400), url


# --- pages with runs that have no metrics yet ---------------------------------------------------------------------

@pytest.fixture
def training_runs(image):
    ds = image.dataset
    done = RunFactory(dataset=ds, arch="small_cnn", status="succeeded",
                      test_metrics={"accuracy": 0.5, "macro_f1": 0.4})
    partial = RunFactory(dataset=ds, arch="small_cnn", status="succeeded", test_metrics={"accuracy": 0.6})
    running = RunFactory(dataset=ds, arch="small_cnn", status="running", test_metrics=None)
    return done, partial, running


def test_the_runs_page_renders_while_a_run_trains(training_runs, as_reviewer):
    answer = as_reviewer.get("/datasets/q/runs/")
    assert answer.status_code == 200
    assert b"50.0 %" in answer.content and b"60.0 %" in answer.content


def test_the_dataset_page_renders_while_a_run_trains(training_runs, as_reviewer):
    assert as_reviewer.get("/datasets/q/").status_code == 200


@pytest.mark.parametrize("pair", [(0, 2), (2, 0), (0, 1), (1, 2)])
def test_compare_renders_runs_without_or_with_partial_metrics(training_runs, as_reviewer, pair):
    ids = ",".join(str(training_runs[i].pk) for i in pair)
    assert as_reviewer.get(f"/runs/compare/?ids={ids}").status_code in (200, 400)


@pytest.mark.parametrize("ids", [HUGE, f"1,{HUGE}", "-1,2", "x", "1," * 50])
def test_compare_takes_any_ids(training_runs, as_reviewer, ids):
    assert as_reviewer.get(f"/runs/compare/?ids={ids}").status_code in (200, 400)


def test_the_runs_api_serves_runs_without_metrics(training_runs, reviewer_api):
    assert reviewer_api.get("/api/runs/").status_code == 200
    assert reviewer_api.get(f"/api/runs/{training_runs[2].pk}/").status_code == 200


# --- names with control characters --------------------------------------------------------------------------------

BAD_NAMES = ["q%00", "%00", "q%01x", "q%1F", "q%7F"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_pages_with_a_control_character_in_the_name_are_404(image, as_curator, name):
    for path in (f"/datasets/{name}/", f"/datasets/{name}/runs/", f"/datasets/{name}/generators/",
                 f"/datasets/{name}/calibration/"):
        assert as_curator.get(path).status_code == 404, path
    for path in (f"/datasets/{name}/review-settings/", f"/datasets/{name}/guidelines/",
                 f"/datasets/{name}/rescore-every/", f"/datasets/{name}/consensus-threshold/"):
        assert as_curator.post(path, {}).status_code == 404, path


@pytest.mark.parametrize("name", BAD_NAMES)
def test_api_routes_with_a_control_character_in_the_name_are_json_404(image, curator_api, name):
    for path in (f"/api/datasets/{name}/", f"/api/datasets/{name}/export.csv", f"/api/datasets/{name}/calibration/",
                 f"/api/datasets/{name}/leaks/"):
        answer = curator_api.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["code"] == "not_found"
    answer = curator_api.post(f"/api/datasets/{name}/leaks/exclude-test/")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


@pytest.mark.parametrize("name", ["q\x00", "\x00", "q\x01", "q\x7f"])
def test_dataset_query_parameters_with_control_characters_are_refused(image, as_reviewer, reviewer_api, name):
    for url in ("/review/", "/review/grid/"):
        answer = as_reviewer.get(url, {"dataset": name})
        assert answer.status_code in (200, 400), url
        assert b"dataset names have no control characters" in answer.content or answer.status_code == 400
    answer = reviewer_api.get("/api/images/", {"dataset": name})
    assert answer.status_code == 400 and "dataset" in answer.json()["detail"]
    answer = reviewer_api.post("/api/review/next/", {"dataset": name}, format="json")
    assert answer.status_code in (400, 404) and "dataset" in answer.json()["detail"]
    answer = reviewer_api.get("/api/runs/", {"dataset": name})
    assert answer.status_code in (200, 400)


# --- API errors are JSON, always -----------------------------------------------------------------------------------

def test_an_unhandled_error_under_the_api_is_a_json_500(image, reviewer):
    """A stored non-finite number (written before these checks existed) cannot be rendered as JSON: the API still
    answers in JSON, with a body that leaks nothing."""
    LabelChange.objects.create(image=image, user=reviewer, action="confirm", old_label=1, new_label=1,
                               old_status="unreviewed", new_status="confirmed", seconds_spent=math.inf)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(reviewer)
    answer = client.get(f"/api/images/{image.pk}/")
    assert answer.status_code == 500
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"detail": "The server could not answer this request; the error has been logged.",
                             "code": "server_error"}


def test_outside_the_api_a_server_error_is_still_a_page(image, reviewer):
    client = Client(raise_request_exception=False)
    client.force_login(reviewer)
    answer = client.get("/no-such-page/")
    assert answer.status_code == 404 and answer["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/api/nope/", "/api/images/x/", "/api/nope"])
def test_unknown_api_urls_are_json_404s(reviewer_api, path):
    answer = reviewer_api.get(path)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


@pytest.mark.parametrize("query", ["dataset=q%00", "dataset=%00", "start=train&dataset=q%00", "dataset=q%01"])
def test_the_jobs_page_takes_a_dataset_parameter_with_control_characters(image, as_curator, query):
    assert as_curator.get(f"/jobs/?{query}").status_code in (200, 400)


@pytest.mark.parametrize("precision", ["nan", "inf", "-inf", "1e999", HUGE, "x"])
def test_the_dataset_page_takes_any_precision(image, as_reviewer, precision):
    answer = as_reviewer.get("/datasets/q/", {"precision": precision})
    assert answer.status_code == 200
    assert math.isfinite(answer.context["precision"])
