"""A decision on an image someone else holds a live lease on is refused (409 in the API, a message in the browser
and the grid) naming who holds it and until when, and changes nothing; the holder's decision then goes through.
The grid claims the images it shows; curators may override a lease by an explicit flag."""
import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from curation.models import Image, LabelChange
from curation.review.services import LeaseHeld, image_claim_next, image_decide
from tests.factories import CuratorFactory, DatasetFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ds(db):
    return DatasetFactory(name="faces")


@pytest.fixture
def held(ds):
    """One image of "faces", claimed by rita from the queue."""
    image = ImageFactory(dataset=ds)
    rita = UserFactory(username="rita")
    assert image_claim_next(user=rita, dataset=ds).pk == image.pk
    return Image.objects.get(pk=image.pk)


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _unchanged(image):
    now = Image.objects.get(pk=image.pk)
    return now.version == image.version and not LabelChange.objects.filter(image=image).exists()


def test_the_service_refuses_a_decision_on_an_image_another_reviewer_holds(held):
    otto = UserFactory(username="otto")
    with pytest.raises(LeaseHeld, match=r"held by rita until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"):
        image_decide(user=otto, image_id=held.pk, action="exclude", version=held.version)
    assert _unchanged(held)
    rita = held.claimed_by
    assert image_decide(user=rita, image_id=held.pk, action="confirm", version=held.version).change is not None


def test_the_api_answers_409_naming_the_holder_and_the_holder_then_decides(held):
    answer = _api(UserFactory(username="otto")).post(f"/api/images/{held.pk}/decision/",
                                                     {"action": "exclude", "version": held.version}, format="json")
    assert answer.status_code == 409, answer.content
    body = answer.json()
    assert body["code"] == "lease_held" and "held by rita until" in body["detail"]
    assert _unchanged(held)
    mine = _api(held.claimed_by).post(f"/api/images/{held.pk}/decision/",
                                      {"action": "confirm", "version": held.version}, format="json")
    assert mine.status_code == 200, mine.content


def test_a_curator_may_override_a_lease_explicitly_a_reviewer_may_not(held):
    refused = _api(UserFactory(username="otto")).post(
        f"/api/images/{held.pk}/decision/", {"action": "exclude", "version": held.version, "override_lease": True},
        format="json")
    assert refused.status_code == 403 and _unchanged(held)
    curator = CuratorFactory(username="carl")
    plain = _api(curator).post(f"/api/images/{held.pk}/decision/", {"action": "exclude", "version": held.version},
                               format="json")
    assert plain.status_code == 409
    overridden = _api(curator).post(f"/api/images/{held.pk}/decision/",
                                    {"action": "exclude", "version": held.version, "override_lease": True},
                                    format="json")
    assert overridden.status_code == 200, overridden.content
    assert LabelChange.objects.get(image=held).user == curator


def test_an_image_nobody_holds_may_be_decided(ds):
    image = ImageFactory(dataset=ds)
    assert image_decide(user=UserFactory(), image_id=image.pk, action="confirm", version=1).change is not None


def test_the_browser_queue_refuses_a_decision_on_a_held_image(held):
    client = Client()
    client.force_login(UserFactory(username="otto"))
    page = client.post(reverse("review_decide"), {"image_id": held.pk, "version": held.version,
                                                  "decision": "exclude", "dataset": "faces"}, follow=True)
    assert "held by rita until" in page.content.decode()
    assert _unchanged(held)


def test_the_grid_claims_what_it_shows(ds):
    images = [ImageFactory(dataset=ds) for _ in range(3)]
    grid_user, queue_user = UserFactory(username="gina"), UserFactory(username="otto")
    client = Client()
    client.force_login(grid_user)
    client.get(reverse("review_grid"), {"dataset": "faces"})
    assert set(Image.objects.filter(claimed_by=grid_user).values_list("pk", flat=True)) == {i.pk for i in images}
    assert image_claim_next(user=queue_user, dataset=ds) is None  # the queue passes over what the grid shows
    other = Client()
    other.force_login(queue_user)
    html = other.get(reverse("review_grid"), {"dataset": "faces"}).content.decode()
    assert 'name="pick"' not in html
    # And a decision posted on the grid's images by someone else is refused by name.
    answer = other.post(reverse("review_grid_decide"), {"pick": [f"{images[0].pk}:1"], "decision": "exclude",
                                                        "dataset": "faces"}, **HTMX)
    assert "held by gina until" in answer.content.decode()
    assert not LabelChange.objects.exists()
    mine = client.post(reverse("review_grid_decide"), {"pick": [f"{i.pk}:1" for i in images], "decision": "confirm",
                                                       "dataset": "faces"}, **HTMX)
    assert "3 images confirmed" in mine.content.decode()


def test_a_curator_overrides_on_the_grid_with_the_checkbox(held):
    ImageFactory(dataset=held.dataset)  # a free image, so that the grid has a page to show
    curator = Client()
    curator.force_login(CuratorFactory(username="carl"))
    page = curator.get(reverse("review_grid"), {"dataset": "faces", "status": "any"}).content.decode()
    assert 'name="override_lease"' in page
    curator.post(reverse("review_grid_decide"), {"pick": [f"{held.pk}:{held.version}"], "decision": "exclude",
                                                 "dataset": "faces"}, **HTMX)
    assert _unchanged(held)
    curator.post(reverse("review_grid_decide"), {"pick": [f"{held.pk}:{held.version}"], "decision": "exclude",
                                                 "dataset": "faces", "override_lease": "on"}, **HTMX)
    assert Image.objects.get(pk=held.pk).status == Image.Status.EXCLUDED
    reviewer = Client()
    reviewer.force_login(UserFactory(username="otto"))
    assert 'name="override_lease"' not in reviewer.get(reverse("review_grid"), {"dataset": "faces"}).content.decode()
