"""The review API's newer parts: the shared filters (signal, suspicion range, status any, a run's confusion-matrix
cell) on the image list and the claim, and votes on datasets needing several reviews."""
import numpy as np
import pytest

from curation.classifier.predictions import run_predictions_path
from curation.models import Run
from tests.factories import (
    DatasetFactory,
    GanModelFactory,
    GeneratedImageFactory,
    ImageFactory,
    RunFactory,
    TransformScoreFactory,
)

pytestmark = pytest.mark.django_db


def test_the_image_list_and_the_claim_take_the_shared_filters(reviewer_api, _media_root):
    ds = DatasetFactory(name="f")
    s = ImageFactory(dataset=ds, flagged=True, suspicion=0.3)
    c = ImageFactory(dataset=ds, classifier_flagged=True, suspicion=0.6)
    t1, t2 = (ImageFactory(dataset=ds, split="test", suspicion=None) for _ in range(2))
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, arch="small_cnn")
    run_predictions_path(run).parent.mkdir(parents=True)
    np.savez(run_predictions_path(run), ids=np.array([t1.pk, t2.pk]), labels=np.array([1, 1]),
             probs=np.eye(8, dtype=np.float32)[[2, 1]])

    def ids(**params):
        return [row["id"] for row in reviewer_api.get("/api/images/", {"dataset": "f", **params}).json()["results"]]

    assert ids(signal="ssim") == [s.pk] and ids(signal="either") == [s.pk, c.pk]
    assert ids(min_suspicion=0.2, max_suspicion=0.5) == [s.pk]
    assert ids(run=run.pk, label="happy", predicted="sad") == [t1.pk]
    assert ids(status="any") == [s.pk, c.pk, t1.pk, t2.pk]
    bad = reviewer_api.get("/api/images/", {"predicted": "sad"})
    assert bad.status_code == 400 and "predicted needs a run" in bad.json()["detail"]
    assert reviewer_api.get("/api/images/", {"run": 999}).status_code == 400
    assert reviewer_api.get("/api/images/", {"signal": "vibes"}).status_code == 400
    empty = reviewer_api.get("/api/images/", {"min_suspicion": 0.6, "max_suspicion": 0.1})
    assert empty.status_code == 400 and "range" in empty.json()["detail"]
    claimed = reviewer_api.post("/api/review/next/", {"dataset": "f", "signal": "classifier"}, format="json")
    assert claimed.json()["image"]["id"] == c.pk
    cell = reviewer_api.post("/api/review/next/", {"dataset": "f", "run": run.pk, "label": "happy",
                                                   "predicted": "happy"}, format="json")
    assert cell.json()["image"]["id"] == t2.pk


def test_votes_through_the_api(reviewer_api, curator_api, reviewer):
    ds = DatasetFactory(name="k", reviews_required=2)
    image = ImageFactory(dataset=ds)
    url = f"/api/images/{image.pk}/decision/"
    first = reviewer_api.post(url, {"action": "exclude", "version": 1}, format="json").json()
    assert (first["outcome"], first["change_id"], first["image"]["status"]) == ("pending", None, "unreviewed")
    again = reviewer_api.post(url, {"action": "exclude", "version": 1}, format="json")
    assert again.status_code == 409 and "already has your vote" in again.json()["detail"]
    undo = reviewer_api.post("/api/review/undo/").json()
    assert (undo["change_id"], undo["withdrawn_vote_id"]) == (None, first["vote_id"])
    reviewer_api.post(url, {"action": "exclude", "version": 1}, format="json")
    second = curator_api.post(url, {"action": "exclude", "version": 1}, format="json").json()
    assert second["outcome"] == "applied" and second["change_id"] and second["image"]["status"] == "excluded"
    plain = ImageFactory(dataset=DatasetFactory(name="one"))
    single = reviewer_api.post(f"/api/images/{plain.pk}/decision/", {"action": "confirm", "version": 1},
                               format="json").json()
    assert (single["outcome"], single["vote_id"]) == ("applied", None) and single["change_id"]


def test_image_detail_lists_the_transformations_behind_the_score(reviewer_api):

    ds = DatasetFactory(name="t")
    image = ImageFactory(dataset=ds, label=1, original_label=1)
    gan = GanModelFactory(dataset=ds, source_label=1, target_label=2, status="succeeded", epoch=5)
    TransformScoreFactory(image=image, gan=gan, direction="AB", target_label=2, epoch=5, ssim=0.9,
                          ssim_into=0.7, z=1.5)
    TransformScoreFactory(image=image, gan=gan, direction="BA", target_label=1, epoch=5, ssim=0.4, z=None)
    GeneratedImageFactory(gan=gan, source_image=image, target_label=2, file="gans/g.png", content_hash="x")
    body = reviewer_api.get(f"/api/images/{image.pk}/").json()
    assert body["transformations"] == [
        {"gan_id": gan.pk, "generator": "G_A", "target_label": "sad", "epoch": 5, "ssim": 0.9, "ssim_into": 0.7,
         "z": 1.5, "file_url": "/media/gans/g.png", "in_use": True},
        {"gan_id": gan.pk, "generator": "G_B", "target_label": "happy", "epoch": 5, "ssim": 0.4, "ssim_into": None,
         "z": None, "file_url": None, "in_use": True},
    ]
    # A newer finished CycleGAN of the pair takes over scoring: these rows are an earlier scoring's now.
    GanModelFactory(dataset=ds, source_label=1, target_label=2, status="succeeded", epoch=5)
    body = reviewer_api.get(f"/api/images/{image.pk}/").json()
    assert [row["in_use"] for row in body["transformations"]] == [False, False]
