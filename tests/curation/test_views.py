import pytest
from django.urls import reverse

from curation.models import Job
from tests.factories import DatasetFactory, ImageFactory, JobFactory


@pytest.mark.django_db
def test_pages_need_a_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_home_lists_datasets_with_split_counts_and_jobs(client, user, django_assert_max_num_queries):
    ds = DatasetFactory(name="affect")
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        ImageFactory.create_batch(n, dataset=ds, split=split)
    for _ in range(5):
        JobFactory(kind="import_dataset", status=Job.Status.FAILED, message="boom")
    client.force_login(user)
    with django_assert_max_num_queries(6):  # no query per dataset or job row
        response = client.get(reverse("home"))
    html = response.content.decode()
    assert "<td>affect</td>" in html
    assert "<td>6</td><td>3</td><td>1</td><td>2</td>" in html
    assert html.count("job-failed") == 5


@pytest.mark.django_db
def test_healthz_answers_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True and response.json()["workers"] == 0
