"""Who may call what: anonymous callers get 401, reviewers read and decide, curators also start and cancel jobs."""
import re

import pytest
from rest_framework.test import APIClient

from curation.models import Image
from tests.factories import DatasetFactory, ImageFactory, JobFactory, RunFactory

pytestmark = pytest.mark.django_db

# (method, url template, body, reviewer status, curator status)
ENDPOINTS = [
    ("get", "/api/datasets/", None, 200, 200),
    ("get", "/api/datasets/{ds}/", None, 200, 200),
    ("get", "/api/datasets/{ds}/export.csv", None, 200, 200),
    ("get", "/api/images/?dataset={ds}", None, 200, 200),
    ("get", "/api/images/{img}/", None, 200, 200),
    ("post", "/api/images/{img}/decision/", {"action": "skip"}, 200, 200),
    ("post", "/api/review/next/", {"dataset": "{ds}"}, 200, 200),
    ("post", "/api/review/undo/", None, 409, 409),  # nothing to undo yet, but allowed to ask
    ("get", "/api/jobs/", None, 200, 200),
    ("post", "/api/jobs/", {"kind": "import_dataset", "params": {"path": "{src}", "format": "imagefolder",
                                                                 "name": "fresh"}}, 403, 201),
    ("get", "/api/jobs/{job}/", None, 200, 200),
    ("post", "/api/jobs/{job}/cancel/", None, 403, 200),
    ("get", "/api/runs/?dataset={ds}", None, 200, 200),
    ("get", "/api/runs/{run}/", None, 200, 200),
]


@pytest.fixture
def objects(tmp_path):
    ds = DatasetFactory(name="perm")
    image = ImageFactory(dataset=ds)
    job = JobFactory(kind="import_dataset", params={})
    run = RunFactory(dataset=ds, arch="small_cnn")
    (tmp_path / "src").mkdir()
    return {"ds": ds.name, "img": image.pk, "job": job.pk, "run": run.pk, "src": str(tmp_path / "src")}


def _call(client, method, url, body, objects):
    url = url.format(**objects)
    if body is not None:
        body = {k: (v.format(**objects) if isinstance(v, str) else
                    {pk: pv.format(**objects) for pk, pv in v.items()}) for k, v in body.items()}
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize("method,url,body,as_reviewer,as_curator", ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_each_endpoint_by_role(method, url, body, as_reviewer, as_curator, objects, anon_api, reviewer_api,
                               curator_api):
    anonymous = _call(anon_api, method, url, body, objects)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Token'
    assert anonymous.json() == {"detail": "Authentication credentials were not provided.",
                                "code": "not_authenticated"}

    reviewer = _call(reviewer_api, method, url, body, objects)
    assert reviewer.status_code == as_reviewer, reviewer.content
    if as_reviewer == 403:
        assert reviewer.json()["code"] == "permission_denied" and "curators" in reviewer.json()["detail"]

    curator = _call(curator_api, method, url, body, objects)
    assert curator.status_code == as_curator, curator.content


def test_a_bad_token_is_401(objects):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/datasets/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_staff_are_curators_without_the_group(objects):
    from tests.factories import UserFactory

    client = APIClient()
    client.force_login(UserFactory(username="boss", is_staff=True))
    assert client.post(f"/api/jobs/{objects['job']}/cancel/").status_code == 200


def test_a_session_post_needs_the_csrf_token(objects, reviewer):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(reviewer)
    response = client.post("/api/review/next/", {"dataset": "perm"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not Image.objects.filter(claimed_by=reviewer).exists()


def test_schema_and_docs_are_public_and_served_without_a_cdn(anon_api):
    schema = anon_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/datasets/{name}/export.csv", "/api/images/", "/api/images/{image_id}/decision/",
                 "/api/review/next/", "/api/review/undo/", "/api/jobs/", "/api/jobs/{job_id}/cancel/",
                 "/api/runs/{run_id}/"):
        assert path in paths
    docs = anon_api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "/static/drf_spectacular_sidecar/" in html
    # Every script and stylesheet from this server: no absolute or scheme-relative address (a CDN's). Not a
    # substring test: the page carries random tokens, and one held "cdn" once.
    addresses = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert addresses and not [a for a in addresses if re.match(r"(https?:)?//", a)], addresses
    assert "jsdelivr" not in html and "unpkg" not in html


def test_unknown_api_paths_answer_json_404(reviewer_api):
    response = reviewer_api.get("/api/images")
    assert response.status_code == 404
    assert response.json() == {"detail": "No API endpoint at /api/images. Did you mean /api/images/ ?",
                               "code": "not_found"}
    assert reviewer_api.get("/api/images/999999/").json()["code"] == "not_found"
