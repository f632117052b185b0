"""The review endpoints: claim under a lease, decide with the version, 409 on a stale one, undo."""
import pytest
from django.utils import timezone

from curation.models import Image, LabelChange, ReviewSkip
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    ds = DatasetFactory(name="q")
    return [ImageFactory(dataset=ds, suspicion=s, original_label=1, label=1) for s in (0.2, 0.9, 0.5)]


def test_next_claims_the_most_suspicious_and_a_second_reviewer_gets_another(queue, reviewer_api, curator_api):
    first = reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    assert first["id"] == queue[1].pk and first["version"] == 1 and first["label"] == "happy"
    assert first["claim_expires_at"]
    second = curator_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    assert second["id"] == queue[2].pk
    again = reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    assert again["id"] == first["id"]  # one's own live claim comes back first


def test_filters_and_an_empty_queue(queue, reviewer_api):
    body = {"dataset": "q", "min_suspicion": 0.95}
    assert reviewer_api.post("/api/review/next/", body, format="json").json() == {"image": None}
    body = {"dataset": "q", "label": "Happiness", "min_suspicion": 0.3}  # an accepted spelling
    assert reviewer_api.post("/api/review/next/", body, format="json").json()["image"]["id"] == queue[1].pk
    bad = reviewer_api.post("/api/review/next/", {"dataset": "q", "label": "grumpy"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "grumpy" in bad.json()["detail"]
    missing = reviewer_api.post("/api/review/next/", {"dataset": "nope"}, format="json")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_decide_with_version_then_a_stale_decision_is_409(queue, reviewer_api, curator_api, reviewer):
    image = reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    url = f"/api/images/{image['id']}/decision/"
    ok = reviewer_api.post(url, {"action": "relabel", "label": "sad", "version": image["version"],
                                 "seconds_spent": 4.5}, format="json")
    assert ok.status_code == 200, ok.content
    body = ok.json()
    assert body["image"]["label"] == "sad" and body["image"]["status"] == "relabelled"
    assert body["image"]["version"] == 2 and body["image"]["reviewed_by"] == "rita"
    change = LabelChange.objects.get(pk=body["change_id"])
    assert (change.user, change.seconds_spent) == (reviewer, 4.5)

    stale = curator_api.post(url, {"action": "confirm", "version": image["version"]}, format="json")
    assert stale.status_code == 409
    at = change.created_at
    assert stale.json() == {
        "detail": f"image {image['id']} is at version 2, not 1: rita changed it at {timezone.localtime(at):%H:%M}",
        "code": "version_conflict", "current_version": 2, "changed_by": "rita",
        "changed_at": at.isoformat().replace("+00:00", "Z"),
    }
    assert Image.objects.get(pk=image["id"]).label == 2 and LabelChange.objects.count() == 1


def test_bad_decisions_are_400_and_change_nothing(queue, reviewer_api):
    url = f"/api/images/{queue[0].pk}/decision/"
    for body, field in (({"action": "relabel", "version": 1}, "label"), ({"action": "confirm"}, "version"),
                        ({"action": "promote", "version": 1}, "action"),
                        ({"action": "relabel", "label": "grumpy", "version": 1}, "label")):
        response = reviewer_api.post(url, body, format="json")
        assert response.status_code == 400, body
        assert field in response.json()["errors"] and response.json()["detail"].startswith("Invalid input.")
    assert reviewer_api.post("/api/images/987654/decision/", {"action": "skip"}, format="json").status_code == 404
    assert not LabelChange.objects.exists() and Image.objects.get(pk=queue[0].pk).version == 1


def test_skip_is_recorded_and_the_image_does_not_come_straight_back(queue, reviewer_api, reviewer):
    image = reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    skipped = reviewer_api.post(f"/api/images/{image['id']}/decision/", {"action": "skip"}, format="json")
    assert skipped.status_code == 200 and skipped.json()["change_id"] is None
    assert ReviewSkip.objects.filter(user=reviewer, image_id=image["id"]).count() == 1
    nxt = reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    assert nxt["id"] != image["id"]


def test_undo_restores_and_is_itself_recorded(queue, reviewer_api):
    image = reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]
    decided = reviewer_api.post(f"/api/images/{image['id']}/decision/",
                                {"action": "exclude", "version": 1}, format="json").json()
    undo = reviewer_api.post("/api/review/undo/")
    assert undo.status_code == 200, undo.content
    body = undo.json()
    assert body["undone_change_id"] == decided["change_id"]
    assert (body["image"]["status"], body["image"]["label"], body["image"]["version"]) == ("unreviewed", "happy", 3)
    assert body["image"]["reviewed_by"] is None
    assert LabelChange.objects.get(pk=body["change_id"]).action == "undo"
    # The undone image is the reviewer's again, so they can decide it anew.
    assert reviewer_api.post("/api/review/next/", {"dataset": "q"}, format="json").json()["image"]["id"] == image["id"]
    nothing = reviewer_api.post("/api/review/undo/")
    assert nothing.status_code == 409 and nothing.json()["code"] == "nothing_to_undo"


def test_undo_after_someone_else_changed_the_image_is_409(queue, reviewer_api, curator_api):
    url = f"/api/images/{queue[0].pk}/decision/"
    reviewer_api.post(url, {"action": "confirm", "version": 1}, format="json")
    curator_api.post(url, {"action": "relabel", "label": "fear", "version": 2}, format="json")
    response = reviewer_api.post("/api/review/undo/")
    assert response.status_code == 409 and response.json()["code"] == "undo_conflict"
    assert Image.objects.get(pk=queue[0].pk).label == 4


def test_image_detail_has_scores_transformations_and_history(queue, reviewer_api):
    image = queue[1]
    reviewer_api.post(f"/api/images/{image.pk}/decision/", {"action": "relabel", "label": "anger", "version": 1},
                      format="json")
    body = reviewer_api.get(f"/api/images/{image.pk}/").json()
    assert body["scores"] == {"ambiguity": None, "suspicion": 0.9, "flagged": False}
    assert body["transformations"] == []
    [change] = body["history"]
    assert (change["action"], change["old_label"], change["new_label"], change["user"]) == ("relabel", "happy", "anger", "rita")
