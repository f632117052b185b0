"""Reviewers see dataset names, not the server's paths: an import job's source folder, a training job's --init
weights, and paths quoted in a job's result, message or error are hidden from them in the API and on the jobs
pages; curators still see them."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

from curation.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db
SECRET = "/srv/fer-private/imports/faces"


@pytest.fixture
def jobs(db):
    imported = JobFactory(kind="import_dataset", status=Job.Status.FAILED,
                          params={"name": "faces", "format": "imagefolder", "path": SECRET},
                          result={"source": SECRET, "bad": [{"path": "happy/1.png", "reason": "not_an_image"}]},
                          message=f"scanning {SECRET}/happy", error=f"cannot read {SECRET}/happy/1.png: denied")
    trained = JobFactory(kind="train_classifier", params={"dataset": "faces", "init": "/srv/weights/resnet.pt"})
    from_run = JobFactory(kind="train_classifier", params={"dataset": "faces", "init": "run:3"})
    return imported, trained, from_run


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_hides_server_paths_from_reviewers(reviewer, jobs):
    imported, trained, from_run = jobs
    listing = _api(reviewer).get("/api/jobs/")
    assert listing.status_code == 200 and "/srv/" not in listing.content.decode()
    one = _api(reviewer).get(f"/api/jobs/{imported.pk}/").json()
    assert one["params"]["name"] == "faces" and one["params"]["format"] == "imagefolder"
    assert one["params"]["path"] == "<server path>" and one["result"]["source"] == "<server path>"
    assert one["result"]["bad"] == [{"path": "happy/1.png", "reason": "not_an_image"}]  # within the dataset: kept
    assert one["message"] == "scanning <server path>" and "/srv/" not in one["error"]
    assert _api(reviewer).get(f"/api/jobs/{trained.pk}/").json()["params"]["init"] == "<server path>"
    assert _api(reviewer).get(f"/api/jobs/{from_run.pk}/").json()["params"]["init"] == "run:3"


def test_curators_still_see_the_paths(curator, jobs):
    imported = jobs[0]
    one = _api(curator).get(f"/api/jobs/{imported.pk}/").json()
    assert one["params"]["path"] == SECRET and one["result"]["source"] == SECRET and SECRET in one["error"]


def test_the_jobs_pages_hide_server_paths_from_reviewers(reviewer, curator, jobs):
    client = Client()
    client.force_login(reviewer)
    imported = jobs[0]
    for url in ("/jobs/", f"/jobs/{imported.pk}/row/"):
        page = client.get(url)
        assert page.status_code == 200 and "/srv/" not in page.content.decode(), url
    curator_client = Client()
    curator_client.force_login(curator)
    assert SECRET in curator_client.get(f"/jobs/{imported.pk}/row/").content.decode()


def test_a_datasets_source_folder_is_hidden_from_reviewers(reviewer, curator):
    from tests.factories import DatasetFactory

    DatasetFactory(name="faces", source=SECRET)
    assert _api(reviewer).get("/api/datasets/faces/").json()["source"] == "<server path>"
    assert _api(curator).get("/api/datasets/faces/").json()["source"] == SECRET
    client = Client()
    client.force_login(reviewer)
    page = client.get("/datasets/faces/")
    assert page.status_code == 200 and "/srv/" not in page.content.decode()
    client.force_login(curator)
    assert SECRET in client.get("/datasets/faces/").content.decode()


def test_changepassword_revokes_the_users_tokens(reviewer, monkeypatch):
    """`manage.py changepassword` (its prompt answered here: it reads the terminal) revokes the user's tokens."""
    import io

    from django.contrib.auth.management.commands import changepassword
    from django.core.management import call_command

    from curation.tokens import issue_token

    token = issue_token(reviewer)[1]
    monkeypatch.setattr(changepassword.getpass, "getpass", lambda prompt="": "a much longer passphrase 42")
    call_command("changepassword", "rita", stdout=io.StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/datasets/").status_code == 401
