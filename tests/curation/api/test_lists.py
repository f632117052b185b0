"""Lists and details: filters, cursor pages, counts, and query counts that do not grow with rows."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.jobs.services import job_enqueue
from curation.models import Job, Run
from curation.services import image_label_change
from tests.factories import DatasetFactory, ImageFactory, JobFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def _fill(n, tag):
    ds = DatasetFactory(name=f"ds-{tag}")
    for i in range(n):
        user = UserFactory(username=f"{tag}-{i}")
        image = ImageFactory(dataset=ds, suspicion=i / n)
        image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=user)
        JobFactory(kind="import_dataset", params={}, created_by=user)
        RunFactory(dataset=ds, arch="small_cnn", created_by=user, test_metrics={"accuracy": 0.5})
    return ds


@pytest.mark.parametrize("url", ["/api/datasets/", "/api/images/", "/api/jobs/", "/api/runs/"])
def test_list_query_counts_do_not_grow_with_rows(url, reviewer_api, django_assert_max_num_queries):
    _fill(2, "small")
    few = _queries(reviewer_api, url)
    _fill(25, "large")
    with django_assert_max_num_queries(few):
        reviewer_api.get(url)
    # auth (token + user) and one or two for the page; the jobs list also asks once whether the requester is a
    # curator (who sees the server paths in jobs' parameters).
    assert few <= (5 if url == "/api/jobs/" else 4)


def test_image_detail_queries_do_not_grow_with_history(reviewer_api, django_assert_max_num_queries):
    image = ImageFactory()
    for version in range(1, 21):
        image_label_change(image_id=image.pk, action="confirm", expected_version=version,
                           user=UserFactory(username=f"u{version}"))
    with django_assert_max_num_queries(4):
        assert len(reviewer_api.get(f"/api/images/{image.pk}/").json()["history"]) == 20


def test_image_filters_and_cursor_pages(reviewer_api):
    ds = DatasetFactory(name="f")
    keep = [ImageFactory(dataset=ds, split="test", original_label=2, label=2, flagged=True, suspicion=0.7 + i / 100)
            for i in range(5)]
    ImageFactory(dataset=ds, split="test", original_label=2, label=2, flagged=False, suspicion=0.9)
    ImageFactory(dataset=ds, split="train", original_label=2, label=2, flagged=True, suspicion=0.9)
    ImageFactory(dataset=DatasetFactory(name="g"), split="test", original_label=2, label=2, flagged=True,
                 suspicion=0.9)
    low = ImageFactory(dataset=ds, split="test", original_label=2, label=2, flagged=True, suspicion=0.1)
    url = "/api/images/?dataset=f&split=test&label=sad&original_label=sadness&flagged=true&min_suspicion=0.5&page_size=2"
    seen = []
    while url:
        page = reviewer_api.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert seen == [i.pk for i in keep]
    assert low.pk not in seen
    assert reviewer_api.get("/api/images/?status=unreviewed&label=sad").json()["results"]
    bad = reviewer_api.get("/api/images/?min_suspicion=lots")
    assert bad.status_code == 400 and "min_suspicion" in bad.json()["errors"]


def test_dataset_detail_counts_per_label_status_and_split(reviewer_api, reviewer):
    ds = DatasetFactory(name="counts")
    a = ImageFactory(dataset=ds, original_label=1, label=1, split="train")
    ImageFactory(dataset=ds, original_label=1, label=1, split="test")
    ImageFactory(dataset=ds, original_label=6, label=6, split="val")
    image_label_change(image_id=a.pk, action="relabel", label=2, expected_version=1, user=reviewer)
    body = reviewer_api.get("/api/datasets/counts/").json()
    assert body["counts"]["total"] == 3
    assert body["counts"]["label"] == {"neutral": 0, "happy": 1, "sad": 1, "surprise": 0, "fear": 0, "disgust": 0,
                                       "anger": 1, "contempt": 0}
    assert body["counts"]["status"] == {"unreviewed": 2, "confirmed": 0, "relabelled": 1, "excluded": 0}
    assert body["counts"]["split"] == {"train": 1, "val": 1, "test": 1}
    [listed] = reviewer_api.get("/api/datasets/").json()
    assert (listed["name"], listed["n_images"], listed["n_reviewed"]) == ("counts", 3, 1)
    assert reviewer_api.get("/api/datasets/missing/").status_code == 404


def test_job_create_detail_and_cancel(curator_api, tmp_path):
    (tmp_path / "src").mkdir()
    created = curator_api.post("/api/jobs/", {"kind": "import_dataset", "params": {
        "path": str(tmp_path / "src"), "format": "imagefolder", "name": "new"}}, format="json")
    assert created.status_code == 201, created.content
    job = created.json()
    assert (job["kind"], job["status"], job["created_by"], job["params"]["name"]) == ("import_dataset", "queued", "carl", "new")
    assert curator_api.get(f"/api/jobs/{job['id']}/").json()["message"] == "queued"
    cancelled = curator_api.post(f"/api/jobs/{job['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_requested"] is True
    assert curator_api.post("/api/jobs/424242/cancel/").status_code == 404


@pytest.mark.parametrize("body,message", [
    ({"kind": "import_dataset", "params": {"path": "/does/not/exist", "format": "imagefolder", "name": "x"}},
     "below the import roots (FER_IMPORT_ROOTS)"),
    ({"kind": "import_dataset", "params": {"path": "/", "format": "imagefolder", "name": "../evil"}}, "dataset name"),
    ({"kind": "import_dataset", "params": {"path": "/", "format": "imagefolder", "name": "x", "seed": "abc"}},
     "invalid literal"),
    ({"kind": "nope", "params": {}}, "unknown job kind 'nope'"),
    ({"kind": "train_classifier", "params": {"dataset": "absent"}}, "dataset 'absent' does not exist"),
    ({"kind": "import_dataset", "params": "not a dict"}, "params"),
])
def test_a_bad_job_parameter_is_400_and_creates_nothing(curator_api, body, message):
    response = curator_api.post("/api/jobs/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and message in response.json()["detail"]
    assert not Job.objects.exists()


def test_jobs_enqueued_elsewhere_are_listed_newest_first(reviewer_api, tmp_path):
    first = job_enqueue(kind="import_dataset", params={"path": str(tmp_path), "format": "csv", "name": "a"}, send=False)
    second = job_enqueue(kind="import_dataset", params={"path": str(tmp_path), "format": "csv", "name": "b"}, send=False)
    assert [j["id"] for j in reviewer_api.get("/api/jobs/").json()["results"]] == [second.pk, first.pk]
    assert [j["id"] for j in reviewer_api.get("/api/jobs/?status=running").json()["results"]] == []


def test_run_detail_has_history_test_metrics_and_confusion(reviewer_api):
    ds = DatasetFactory(name="r")
    confusion = [[int(i == j) * 5 for j in range(8)] for i in range(8)]
    run = RunFactory(
        dataset=ds, arch="small_cnn", status=Run.Status.SUCCEEDED, history=[{"epoch": 1, "val_loss": 1.2}],
        test_metrics={"accuracy": 0.75, "macro_f1": 0.7, "confusion": confusion, "precision": [1.0] * 8},
        plots={"confusion": "runs/1/confusion.png"},
    )
    RunFactory(dataset=DatasetFactory(name="s"), arch="small_cnn")
    listed = reviewer_api.get("/api/runs/?dataset=r").json()["results"]
    assert [(r["id"], r["test_accuracy"], r["test_macro_f1"]) for r in listed] == [(run.pk, 0.75, 0.7)]
    body = reviewer_api.get(f"/api/runs/{run.pk}/").json()
    assert body["history"] == [{"epoch": 1, "val_loss": 1.2}]
    assert body["test_metrics"]["confusion"] == confusion
    assert body["classes"][:3] == ["neutral", "happy", "sad"]
    assert body["plots"] == {"confusion": "/media/runs/1/confusion.png"}


@pytest.mark.parametrize("url", ["/api/images/?dataset=nope", "/api/runs/?dataset=nope"])
def test_a_list_filtered_by_an_unknown_dataset_is_a_404_naming_it(reviewer_api, url):
    ImageFactory(dataset=DatasetFactory(name="demo"))
    response = reviewer_api.get(url)
    assert response.status_code == 404, response.content  # not 200 with nothing, which reads as an empty dataset
    assert response.json() == {"detail": "dataset 'nope' does not exist", "code": "not_found"}
    assert reviewer_api.get(url.replace("nope", "demo")).status_code == 200


def test_retrain_is_a_job_kind_deriving_from_the_latest_run(curator_api):
    ds = DatasetFactory(name="faces")
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for k in range(n):
            ImageFactory(dataset=ds, split=split, original_label=1 + k % 2, label=1 + k % 2)
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, config={"arch": "small_cnn", "epochs": 3})
    response = curator_api.post("/api/jobs/", {"kind": "retrain", "params": {"dataset": "faces", "reduced": True,
                                                                           "doubtful": "either"}}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert job.kind == "train_classifier"
    assert (job.params["arch"], job.params["epochs"], job.params["derived_from"]) == ("small_cnn", 3, run.pk)
    assert job.params["reduced"] is True and job.params["doubtful"] == "either"


def _flagged_faces():
    """A dataset whose SSIM rule flags nothing and whose classifier flags two unreviewed train images."""
    ds = DatasetFactory(name="faces")
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for k in range(n):
            ImageFactory(dataset=ds, split=split, original_label=1 + k % 2, label=1 + k % 2,
                         classifier_flagged=split == "train" and k < 2)
    return ds, RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, config={"arch": "small_cnn", "epochs": 3})


def test_retrain_takes_the_forms_doubtful_rule_where_params_name_none(curator_api):
    ds, _ = _flagged_faces()
    body = {"kind": "retrain", "params": {"dataset": "faces", "reduced": True}}
    response = curator_api.post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    assert Job.objects.get().params["doubtful"] == "none"  # the SSIM rule flags none here: as the form starts
    Job.objects.all().delete()
    ds.images.filter(split="train", classifier_flagged=False).update(flagged=True)  # the SSIM rule flags: the published rule
    response = curator_api.post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    assert Job.objects.get().params["doubtful"] == "ssim"


def test_a_retrain_dry_run_previews_what_it_would_train_on_and_queues_nothing(curator_api):
    from curation.web.forms import RetrainForm

    _flagged_faces()
    response = curator_api.post("/api/jobs/", {"kind": "retrain", "dry_run": True,
                                               "params": {"dataset": "faces", "reduced": True}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert not Job.objects.exists()
    assert body["kind"] == "train_classifier" and body["params"]["doubtful"] == "none"
    preview = body["preview"]
    assert preview["counts"]["dropped_flagged_unconfirmed"] == 0 and preview["counts"]["train"] == 6
    assert preview["problems"] == [] and preview["doubtful_counts"]["classifier"] == 2
    # The same figures the retrain form shows for the same choices.
    form = RetrainForm({"retrain-dataset": "faces", "retrain-reduced": "on"}, prefix="retrain")
    assert preview["counts"] == form.preview()["counts"]
    # A rule that flags nothing here: the preview says so and names what the others would drop.
    ssim = curator_api.post("/api/jobs/", {"kind": "retrain", "dry_run": True, "params": {
        "dataset": "faces", "reduced": True, "doubtful": "ssim"}}, format="json").json()["preview"]
    (problem,) = ssim["problems"]
    assert problem["code"] == "doubtful_flags_none" and "--doubtful classifier would drop 2" in problem["text"]
    # A retrain that would be refused is refused the same way by its dry run (400, the validator's words).
    for dry_run in (True, False):
        bad = curator_api.post("/api/jobs/", {"kind": "retrain", "dry_run": dry_run, "params": {
            "dataset": "faces", "augmented": True}}, format="json")
        assert bad.status_code == 400 and "has no generated images yet" in bad.json()["detail"]
    # A dry run of another kind checks its parameters and previews nothing.
    plain = curator_api.post("/api/jobs/", {"kind": "train_classifier", "dry_run": True,
                                            "params": {"dataset": "faces", "epochs": 2}}, format="json").json()
    assert plain["preview"] is None and plain["params"]["epochs"] == 2
    assert not Job.objects.exists()
