"""Issue #36 item 2, the dataset map: the map_dataset job projects the queue model's embeddings, stores the map and
reuses it until the embeddings change; the data endpoint answers the compact binary with the images' current labels
to signed-in users only; a selection is stored whole or refused naming the bad id, and the grid shows exactly it."""
import io
import re

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.jobs.errors import JobParamsError
from curation.jobs.services import job_enqueue
from curation.maps import store
from curation.maps.project import pca_2d
from curation.models import Dataset, Image, ImageSelection, Job
from tests.conftest import wait_for
from tests.curation.map_data import clustered_dataset, cluster_embeddings, cluster_labels, import_embeddings

pytestmark = pytest.mark.usefixtures("inline_jobs")


def _map(ds, *args):
    out = io.StringIO()
    call_command("map_dataset", "--dataset", ds.name, "--method", "pca", *args, "--inline", stdout=out,
                 stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_the_job_stores_the_map_reuses_it_and_recomputes_after_the_embeddings_change(tmp_path):
    ds = clustered_dataset(tmp_path, n=120)
    out = _map(ds)
    assert "120 train images" in out and "by pca" in out
    ids, xy, meta = store.map_read(ds)
    train = list(Image.objects.filter(dataset=ds, split="train").order_by("id").values_list("id", flat=True))
    assert ids.tolist() == train  # every train image once, no test image
    run = Dataset.objects.get(pk=ds.pk).queue_run
    assert meta["method"] == "pca" and meta["embeddings"]["run"] == run.pk
    # The stored coordinates are the embeddings' principal components, row for row.
    embeddings = cluster_embeddings(cluster_labels(120))
    np.testing.assert_allclose(xy, pca_2d(embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)),
                               atol=2e-3)
    # Each label's images sit together: every image is nearer its own label's centre than any other's.
    labels = np.array(cluster_labels(120))
    centres = np.stack([xy[labels == c].mean(0) for c in range(8)])
    assert (np.linalg.norm(xy[:, None] - centres[None], axis=2).argmin(1) == labels).all()

    # Unchanged embeddings: the stored map is reused, not recomputed (the file is not rewritten).
    before = store.map_path(ds).stat().st_mtime_ns
    out = _map(ds)
    assert "reused" in out and store.map_path(ds).stat().st_mtime_ns == before
    assert Job.objects.filter(kind="map_dataset").latest("id").result["reused"] is True

    # New embeddings (another model now feeds the queue): the map is stale until the job recomputes it.
    moved = cluster_embeddings(cluster_labels(120), seed=5, radius=3.0)
    import_embeddings(tmp_path, ds, moved, cluster_labels(120), tag="b")
    new_run = Dataset.objects.get(pk=ds.pk).queue_run
    assert new_run.pk != run.pk
    assert not store.map_is_current(store.map_read(ds)[2], store.embeddings_fingerprint(new_run))
    out = _map(ds)
    assert "reused" not in out
    ids2, xy2, meta2 = store.map_read(ds)
    assert meta2["embeddings"]["run"] == new_run.pk and ids2.tolist() == train
    np.testing.assert_allclose(xy2, pca_2d(moved / np.linalg.norm(moved, axis=1, keepdims=True)), atol=2e-3)
    # --force recomputes even when nothing changed.
    assert "reused" not in _map(ds, "--force")


@pytest.mark.django_db
def test_a_dataset_without_embeddings_is_refused_by_name(tmp_path):
    ds = Dataset.objects.create(name="bare", source=str(tmp_path), format="csv")
    Image.objects.create(dataset=ds, path="a.png", file="a.png", content_hash="0" * 64, width=1, height=1,
                         split="train", original_label=0, label=0)
    with pytest.raises(CommandError, match="dataset 'bare' has no embeddings to map"):
        _map(ds)
    with pytest.raises(JobParamsError, match="method must be one of auto, umap, pca, not 'tsne'"):
        job_enqueue(kind="map_dataset", params={"dataset": "bare", "method": "tsne"})
    assert not Job.objects.exists() and not (store.map_path(ds)).exists()


def test_the_job_runs_on_a_real_worker(start_worker, tmp_path):
    ds = clustered_dataset(tmp_path, n=60)
    start_worker()
    job = job_enqueue(kind="map_dataset", params={"dataset": ds.name, "method": "pca"})
    wait_for(lambda: Job.objects.get(pk=job.pk).status in ("succeeded", "failed"), timeout=120, what="the map job")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.result["points"] == 60 and job.result["method"] == "pca" and job.result["reused"] is False
    assert store.map_read(ds)[0].tolist() == sorted(
        Image.objects.filter(dataset=ds, split="train").values_list("id", flat=True))


@pytest.fixture
def mapped(db, tmp_path):
    ds = clustered_dataset(tmp_path, n=80)
    _map(ds)
    return ds


def test_the_data_endpoint_answers_the_compact_map_with_current_labels(mapped, reviewer_api):
    first = Image.objects.filter(dataset=mapped, split="train").order_by("id").first()
    Image.objects.filter(pk=first.pk).update(label=5, status=Image.Status.RELABELLED, suspicion=0.5)
    response = reviewer_api.get(f"/api/datasets/{mapped.name}/map/")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert response["X-Map-Method"] == "pca" and response["X-Map-Current"] == "true"
    data = response.content
    assert len(data) == 16 + 12 * 80  # 12 bytes a point
    got = store.map_payload_decode(data)
    ids, xy, _ = store.map_read(mapped)
    assert got["ids"].tolist() == ids.tolist()
    rows = {r[0]: r[1:] for r in Image.objects.filter(dataset=mapped, split="train").values_list(
        "id", "label", "classifier_suggested_label", "suspicion", "status")}
    for k, pk in enumerate(got["ids"].tolist()):
        label, suggested, suspicion, status = rows[pk]
        assert got["label"][k] == label
        assert got["suggested"][k] == (255 if suggested is None else suggested)
        assert got["suspicion"][k] == (255 if suspicion is None else round(suspicion * 254))
        assert store.STATUSES[got["status"][k]] == status
    assert got["label"][0] == 5 and store.STATUSES[got["status"][0]] == "relabelled" and got["suspicion"][0] == 127
    # The coordinates, on one scale for both axes (the wider spanning 0..65535), keep the stored map's shape.
    scaled = (xy - xy.min(0)) / (xy.max(0) - xy.min(0)).max() * 65535
    np.testing.assert_allclose(np.stack([got["x"], got["y"]], 1), scaled, atol=0.51)
    assert got["x"].min() == got["y"].min() == 0 and max(got["x"].max(), got["y"].max()) == 65535


def test_the_data_endpoint_is_for_signed_in_users_and_names_what_is_missing(mapped, anon_api, reviewer_api, tmp_path):
    assert anon_api.get(f"/api/datasets/{mapped.name}/map/").status_code in (401, 403)
    assert anon_api.post(f"/api/datasets/{mapped.name}/map/selection/", {"ids": [1]},
                         format="json").status_code in (401, 403)
    missing = reviewer_api.get("/api/datasets/nosuch/map/")
    assert missing.status_code == 404 and "nosuch" in missing.json()["detail"]
    Dataset.objects.create(name="unmapped", source=str(tmp_path), format="csv")
    none = reviewer_api.get("/api/datasets/unmapped/map/")
    assert none.status_code == 404 and "map_dataset" in none.json()["detail"]


def test_a_selection_is_stored_whole_or_refused_naming_the_bad_id(mapped, reviewer_api, client, reviewer):
    ids = list(Image.objects.filter(dataset=mapped, split="train", label=3).values_list("id", flat=True))
    other = Dataset.objects.create(name="other", source="x", format="csv")
    stranger = Image.objects.create(dataset=other, path="s.png", file="s.png", content_hash="1" * 64, width=1,
                                    height=1, split="train", original_label=0, label=0)
    refused = reviewer_api.post(f"/api/datasets/{mapped.name}/map/selection/", {"ids": ids + [stranger.pk]},
                                format="json")
    assert refused.status_code == 400
    assert f"image {stranger.pk} is not an image of dataset {mapped.name}" in str(refused.json())
    for bad, words in (([], "at least one image"), (["7"], "whole numbers")):
        answer = reviewer_api.post(f"/api/datasets/{mapped.name}/map/selection/", {"ids": bad}, format="json")
        assert answer.status_code == 400 and words in str(answer.json())
    assert not ImageSelection.objects.exists()

    made = reviewer_api.post(f"/api/datasets/{mapped.name}/map/selection/", {"ids": ids, "source": "lasso"},
                             format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["images"] == len(ids) and f"selection={body['selection']}" in body["grid"]
    selection = ImageSelection.objects.get(pk=body["selection"])
    assert sorted(selection.images.values_list("pk", flat=True)) == sorted(ids)
    # The grid and the image list show exactly those images.
    client.force_login(reviewer)
    page = client.get(body["grid"])
    assert page.status_code == 200
    shown = sorted(int(i) for i in re.findall(r'name="pick" value="(\d+)', page.content.decode()))
    assert shown == sorted(ids)
    listed = reviewer_api.get(f"/api/images/?dataset={mapped.name}&status=any&selection={selection.pk}").json()
    assert sorted(r["id"] for r in listed["results"]) == sorted(ids)
    # A decision in that grid comes back to the same selection.
    first = Image.objects.get(pk=min(ids))
    decided = client.post("/review/grid/decide/", {"dataset": mapped.name, "status": "any",
                                                   "selection": selection.pk, "decision": "confirm",
                                                   "pick": f"{first.pk}:{first.version}"})
    assert decided.status_code == 302 and f"selection={selection.pk}" in decided["Location"]
    assert Image.objects.get(pk=first.pk).status == Image.Status.CONFIRMED
    # A selection of one dataset is not a filter of another.
    wrong = client.get(f"/review/grid/?dataset=other&selection={selection.pk}")
    assert f"selection {selection.pk} is of dataset {mapped.name}, not other" in wrong.content.decode()


@pytest.mark.django_db
def test_the_page_says_what_the_map_is_made_of_and_when_it_is_stale(tmp_path, client, reviewer, curator):
    ds = clustered_dataset(tmp_path, n=40)
    assert client.get(f"/datasets/{ds.name}/map/").status_code == 302  # log in first
    client.force_login(curator)
    page = client.get(f"/datasets/{ds.name}/map/").content.decode()
    assert 'id="map-none"' in page and "?start=map&amp;dataset=mapped" in page and "<canvas" not in page
    assert f'href="/datasets/{ds.name}/map/" id="map-link"' in client.get(f"/datasets/{ds.name}/").content.decode()
    _map(ds)
    page = client.get(f"/datasets/{ds.name}/map/").content.decode()
    assert "40 train images, placed by <strong>PCA</strong>" in page and 'data-current="true"' in page
    assert '<script src="/static/js/dataset_map.js' in page and 'id="map-config" type="application/json"' in page
    assert "map-stale" not in page
    import_embeddings(tmp_path, ds, cluster_embeddings(cluster_labels(40), seed=9), cluster_labels(40), tag="b")
    client.force_login(reviewer)
    page = client.get(f"/datasets/{ds.name}/map/").content.decode()
    assert 'id="map-stale"' in page and "The embeddings changed since this map was made" in page
    assert "Map it again" not in page and "A curator can map it again" in page
