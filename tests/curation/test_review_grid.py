"""The grid view through Django's test client: pages of thumbnails in queue order, one action on a selection with
an audit row per image, conflicts reported by name and not overwritten, bad input refused whole."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import Image, LabelChange, ReviewVote
from curation.review.services import image_claim_next
from curation.services import image_label_change
from tests.factories import DatasetFactory, ImageFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ds(db):
    return DatasetFactory(name="grid")


def _tiles(response):
    html = response.content.decode()
    return [int(part.split(":", 1)[0]) for part in html.split('name="pick" value="')[1:]]


def test_the_grid_pages_the_queue_in_order_and_leaves_out_images_others_hold(client, user, ds):
    images = [ImageFactory(dataset=ds, suspicion=1 - i / 100) for i in range(50)]
    unscored = ImageFactory(dataset=ds, suspicion=None)
    ImageFactory(dataset=ds, suspicion=0.99, label=3, original_label=3)  # another class
    held = image_claim_next(user=UserFactory(username="other"), dataset=ds, filters={"label": 1})
    assert held.pk == images[0].pk
    client.force_login(user)
    first = client.get(reverse("review_grid"), {"dataset": "grid", "label": "1"})
    assert _tiles(first) == [i.pk for i in images[1:49]]
    assert "page=2" in first.content.decode()
    second = client.get(reverse("review_grid"), {"dataset": "grid", "label": "1", "page": "2"})
    assert _tiles(second) == [images[49].pk, unscored.pk]
    assert 'src="/media/' in first.content.decode()


def test_one_action_relabels_the_selection_with_an_audit_row_each_and_reports_conflicts(client, user, ds):
    a, b, c, d = (ImageFactory(dataset=ds, suspicion=s, path=f"happy/{n}.png") for n, s in
                  enumerate((0.9, 0.8, 0.7, 0.6)))
    client.force_login(user)
    client.get(reverse("review_grid"), {"dataset": "grid"})
    image_label_change(image_id=c.pk, action="exclude", expected_version=1, user=UserFactory(username="bob"))
    response = client.post(reverse("review_grid_decide"), {
        "pick": [f"{a.pk}:1", f"{b.pk}:1", f"{c.pk}:1"], "decision": "relabel:4", "dataset": "grid",
        "shown_at": "0"}, **HTMX)
    html = " ".join(response.content.decode().split())
    assert response.templates[0].name == "curation/review_grid_part.html"
    assert "2 images relabelled to fear." in html
    assert "Conflict: happy/2.png changed since the grid showed it; nothing was overwritten" in html
    assert _tiles(response) == [d.pk]
    for image in (a, b):
        image.refresh_from_db()
        assert (image.label, image.status, image.reviewed_by, image.version) == (4, "relabelled", user, 2)
        [change] = LabelChange.objects.filter(image=image)
        assert (change.action, change.user, change.new_label) == ("relabel", user, 4)
        assert change.seconds_spent is not None
    c.refresh_from_db()
    assert (c.status, c.label, c.reviewed_by.username, c.version) == ("excluded", 1, "bob", 2)
    assert LabelChange.objects.filter(image=c).count() == 1


def test_without_htmx_the_grid_redirects_back_to_its_page(client, user, ds):
    image = ImageFactory(dataset=ds)
    client.force_login(user)
    response = client.post(reverse("review_grid_decide"), {
        "pick": [f"{image.pk}:1"], "decision": "exclude", "dataset": "grid", "label": "1", "page": "1"})
    assert response.status_code == 302 and response["Location"] == "/review/grid/?dataset=grid&label=1&page=1"
    assert Image.objects.get(pk=image.pk).status == "excluded"


@pytest.mark.parametrize("data, error", [
    ({"decision": "confirm"}, "select at least one image first"),
    ({"decision": "skip", "pick": ["1:1"]}, "skip works in the queue"),
    ({"decision": "relabel:9", "pick": ["1:1"]}, "relabel needs a class 0-7"),
    ({"decision": "confirm", "pick": ["1:1", "x"]}, "a selected image is"),
])
def test_bad_grid_input_records_nothing(client, user, ds, data, error):
    ImageFactory(dataset=ds)
    client.force_login(user)
    response = client.post(reverse("review_grid_decide"), {**data, "dataset": "grid"}, **HTMX)
    assert error in response.content.decode()
    assert not LabelChange.objects.exists()


def test_too_big_a_selection_is_refused_whole(client, user, ds):
    images = ImageFactory.create_batch(201, dataset=ds)
    client.force_login(user)
    response = client.post(reverse("review_grid_decide"), {
        "pick": [f"{i.pk}:1" for i in images], "decision": "confirm", "dataset": "grid"}, **HTMX)
    assert "Nothing recorded: at most 200 images per action, not 201" in response.content.decode()
    assert not LabelChange.objects.exists()


def test_on_a_dataset_needing_two_reviews_the_grid_votes(client, user, ds):
    ds.reviews_required = 2
    ds.save()
    image = ImageFactory(dataset=ds)
    client.force_login(user)
    response = client.post(reverse("review_grid_decide"), {
        "pick": [f"{image.pk}:1"], "decision": "confirm", "dataset": "grid"}, **HTMX)
    assert "1 image confirmed." in response.content.decode() and _tiles(response) == []
    assert ReviewVote.objects.filter(image=image, user=user).count() == 1 and not LabelChange.objects.exists()


def test_the_grid_query_count_does_not_grow_with_images(client, user, ds):
    counts = []
    for n in (10, 200):
        ds_n = DatasetFactory(name=f"grid{n}")
        ImageFactory.create_batch(n, dataset=ds_n, suspicion=0.5)
        client.force_login(user)
        with CaptureQueriesContext(connection) as ctx:
            client.get(reverse("review_grid"), {"dataset": ds_n.name})
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
