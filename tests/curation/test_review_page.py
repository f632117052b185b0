"""The browser review queue's views through Django's test client (no browser): cards, decisions, conflicts,
undo, leases, and a query count that does not grow with the dataset."""
import time

import pytest
from django.urls import reverse

from curation.models import Image, LabelChange
from curation.review.services import image_claim_next
from curation.services import image_label_change
from tests.factories import DatasetFactory, ImageFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ds(db):
    return DatasetFactory(name="queue")


def _card_image_id(response):
    html = response.content.decode()
    marker = 'data-image-id="'
    return int(html.split(marker, 1)[1].split('"', 1)[0]) if marker in html else None


@pytest.mark.django_db
def test_the_queue_needs_a_login(client):
    response = client.get(reverse("review"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_page_shows_the_most_suspicious_image_claimed_with_htmx_from_static(client, user, ds):
    ImageFactory(dataset=ds, suspicion=0.2)
    top = ImageFactory(dataset=ds, suspicion=0.9, label=2, original_label=1, flagged=True, ambiguity=0.91)
    client.force_login(user)
    response = client.get(reverse("review"))
    html = response.content.decode()
    assert _card_image_id(response) == top.pk
    assert "/static/django_htmx/htmx-2.min.js" in html and "/static/js/review_keys.js" in html
    assert "<strong>sad</strong>" in html and "original <strong>happy</strong>" in html
    assert f'src="/media/{top.file}"' in html
    assert Image.objects.get(pk=top.pk).claimed_by == user
    assert 'href="/review/"' in client.get(reverse("home")).content.decode()


def test_a_decision_records_the_time_shown_and_returns_the_next_card(client, user, ds):
    first, second = ImageFactory(dataset=ds, suspicion=0.9), ImageFactory(dataset=ds, suspicion=0.5)
    client.force_login(user)
    client.get(reverse("review"))
    response = client.post(reverse("review_decide"), {
        "image_id": first.pk, "version": 1, "decision": "relabel:3", "shown_at": time.time() - 4.0,
        "dataset": "queue"}, **HTMX)
    assert response.templates[0].name == "curation/review_card.html"
    assert _card_image_id(response) == second.pk
    assert "relabelled to surprise" in response.content.decode()
    change = LabelChange.objects.get(image=first)
    assert (change.action, change.new_label, change.user) == ("relabel", 3, user)
    assert 3.5 < change.seconds_spent < 30
    assert "you: 1 decision, median 4." in " ".join(response.content.decode().split())


def test_without_htmx_a_decision_redirects_back_to_the_filtered_page(client, user, ds):
    image = ImageFactory(dataset=ds, label=2, original_label=2)
    client.force_login(user)
    response = client.post(reverse("review_decide"), {
        "image_id": image.pk, "version": 1, "decision": "confirm", "dataset": "queue", "label": "2"})
    assert response.status_code == 302 and response["Location"] == "/review/?dataset=queue&label=2"
    assert Image.objects.get(pk=image.pk).status == Image.Status.CONFIRMED


def test_a_stale_decision_shows_a_conflict_and_overwrites_nothing(client, user, ds):
    image = ImageFactory(dataset=ds)
    client.force_login(user)
    client.get(reverse("review"))
    other = UserFactory(username="other")
    image_label_change(image_id=image.pk, action="exclude", expected_version=1, user=other)
    response = client.post(reverse("review_decide"), {
        "image_id": image.pk, "version": 1, "decision": "relabel:0", "dataset": "queue"}, **HTMX)
    assert "Conflict: image" in response.content.decode() and "nothing was overwritten" in response.content.decode()
    image.refresh_from_db()
    assert (image.status, image.label, image.version) == ("excluded", 1, 2)
    assert LabelChange.objects.filter(image=image).count() == 1


def test_the_same_post_twice_records_one_decision(client, user, ds):
    image = ImageFactory(dataset=ds)
    ImageFactory(dataset=ds)
    client.force_login(user)
    data = {"image_id": image.pk, "version": 1, "decision": "confirm", "dataset": "queue"}
    client.post(reverse("review_decide"), data, **HTMX)
    response = client.post(reverse("review_decide"), data, **HTMX)
    assert "Conflict" in response.content.decode()
    assert LabelChange.objects.filter(image=image).count() == 1


def test_undo_brings_the_image_back_to_the_reviewer(client, user, ds):
    first, second = ImageFactory(dataset=ds, suspicion=0.9), ImageFactory(dataset=ds, suspicion=0.5)
    client.force_login(user)
    client.get(reverse("review"))
    client.post(reverse("review_decide"), {"image_id": first.pk, "version": 1, "decision": "exclude"}, **HTMX)
    response = client.post(reverse("review_undo"), {"dataset": "queue"}, **HTMX)
    assert _card_image_id(response) == first.pk
    assert "Undid your exclude" in response.content.decode()
    assert Image.objects.get(pk=first.pk).status == Image.Status.UNREVIEWED
    assert Image.objects.get(pk=second.pk).claimed_by is None
    assert "Nothing undone" in client.post(reverse("review_undo"), **HTMX).content.decode()


def test_skip_passes_the_image_on(client, user, ds):
    first, second = ImageFactory(dataset=ds, suspicion=0.9), ImageFactory(dataset=ds, suspicion=0.5)
    client.force_login(user)
    response = client.post(reverse("review_decide"), {"image_id": first.pk, "decision": "skip"}, **HTMX)
    assert _card_image_id(response) == second.pk


def test_the_lease_poll_renews_and_stops_when_the_claim_is_lost(client, user, ds):
    image = ImageFactory(dataset=ds, suspicion=0.5)
    client.force_login(user)
    client.get(reverse("review"))
    assert client.post(reverse("review_lease"), {"image_id": image.pk}, **HTMX).status_code == 204
    image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=UserFactory(username="b"))
    lost = client.post(reverse("review_lease"), {"image_id": image.pk}, **HTMX)
    assert lost.status_code == 286 and "no longer hold" in lost.content.decode()


def test_filters_pick_the_card_and_bad_filters_show_errors(client, user, ds):
    ImageFactory(dataset=ds, suspicion=0.9, label=1)
    sad = ImageFactory(dataset=ds, suspicion=0.1, label=2, flagged=True)
    client.force_login(user)
    response = client.get(reverse("review"), {"dataset": "queue", "label": "2", "flagged": "yes"}, **HTMX)
    assert _card_image_id(response) == sad.pk
    assert "reviewed 0 / 1 under this filter" in response.content.decode()
    bad = client.get(reverse("review"), {"min_suspicion": "lots"})
    assert bad.status_code == 200 and _card_image_id(bad) is None and "min_suspicion" in bad.content.decode()


@pytest.mark.parametrize("n", [10, 200])
def test_the_queue_views_query_count_does_not_grow_with_images(client, user, ds, n, django_assert_max_num_queries):
    images = ImageFactory.create_batch(n, dataset=ds, suspicion=0.5)
    other = UserFactory(username="other")
    for image in images[: n // 2]:
        image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=other)
    held = image_claim_next(user=user, dataset=ds)
    for _ in range(3):
        image_label_change(image_id=held.pk, action="relabel", label=_ % 8, expected_version=held.version + _,
                           user=other)
        Image.objects.filter(pk=held.pk).update(status="unreviewed")
    client.force_login(user)
    # The card reads its history, transformations and classifier run: a fixed number, the same for 10 or 200 images
    # (PostgreSQL also counts the claim's savepoints and its SET LOCAL synchronous_commit), plus one asking whether
    # the dataset has been scored at all. A decision also takes the image's lease in its transaction (a savepoint
    # and one conditional UPDATE; on PostgreSQL 27 against SQLite's 26), and asks whether the image has a known true
    # label (one query: the known-truth panel's stored counts follow each change, curation/truth.py).
    with django_assert_max_num_queries(20):
        client.get(reverse("review"))
    with django_assert_max_num_queries(28):
        client.post(reverse("review_decide"), {"image_id": images[-1].pk, "version": 1, "decision": "confirm"}, **HTMX)
