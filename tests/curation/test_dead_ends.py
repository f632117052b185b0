"""No dead ends: a job the dataset cannot support is refused before it is queued, with a message naming the
dataset and the problem, whether it is started by command, form or API; the pages say what is missing instead of
failing silently or answering a bare error."""
import html
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from curation.models import GeneratedImage, Image, Job, LabelChange
from curation.services import image_label_change
from tests.factories import (
    DatasetFactory,
    GanModelFactory,
    ImageFactory,
    JobFactory,
    RunFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_jobs")]


def text(response):
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def _images(ds, split, n, label=1, **kw):
    return [ImageFactory(dataset=ds, split=split, original_label=label, label=label, **kw) for _ in range(n)]


def _refused_everywhere(as_curator, curator_api, *, command, form, api, message):
    """The same bad start, by command, by the jobs page's form and by the API: each refused with `message` and
    nothing queued."""
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(*command, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    key, data = form
    response = as_curator.post(f"/jobs/start/{key}/", data)
    assert response.status_code == 400 and message in text(response), text(response)[-3000:]
    response = curator_api.post("/api/jobs/", api, format="json")
    assert response.status_code == 400 and message in response.json()["detail"], response.content
    assert not Job.objects.exists()


# 1. Jobs the dataset cannot support are refused before they are queued


def test_training_without_test_images_is_refused_before_queueing(as_curator, curator_api):
    ds = DatasetFactory(name="notest")
    _images(ds, "train", 6)
    _images(ds, "val", 2)
    message = "dataset 'notest' has no test-split images"
    _refused_everywhere(
        as_curator, curator_api, message=message,
        command=("train_classifier", "--dataset", "notest", "--arch", "small_cnn"),
        form=("train", {"train-dataset": "notest", "train-arch": "small_cnn", "train-folds": "0"}),
        api={"kind": "train_classifier", "params": {"dataset": "notest", "arch": "small_cnn"}})
    RunFactory(dataset=ds, status="succeeded", config={"arch": "small_cnn"})
    _refused_everywhere(
        as_curator, curator_api, message=message,
        command=("retrain", "--dataset", "notest", "--reduced"),
        form=("retrain", {"retrain-dataset": "notest", "retrain-reduced": "on"}),
        api={"kind": "train_classifier", "params": {"dataset": "notest", "arch": "small_cnn", "reduced": True}})


def test_more_folds_than_train_images_is_refused(as_curator, curator_api):
    ds = DatasetFactory(name="few")
    _images(ds, "train", 2, label=1)
    _images(ds, "train", 1, label=2)
    _images(ds, "test", 1)
    _refused_everywhere(
        as_curator, curator_api, message="dataset 'few' has 3 train images, fewer than the 5 folds",
        command=("train_classifier", "--dataset", "few", "--arch", "small_cnn", "--folds", "5"),
        form=("train", {"train-dataset": "few", "train-arch": "small_cnn", "train-folds": "5"}),
        api={"kind": "train_classifier", "params": {"dataset": "few", "arch": "small_cnn", "folds": 5}})


def test_folds_that_no_class_can_fill_are_refused(as_curator, curator_api):
    """Stratified folds need a class with at least one image per fold; 2 happy and 2 sad cannot make 3 folds."""
    ds = DatasetFactory(name="thin")
    _images(ds, "train", 2, label=1)
    _images(ds, "train", 2, label=2)
    _images(ds, "test", 1)
    message = "no class of dataset 'thin''s train split has 3 images (the most is 2, in happy), and 3 folds need one"
    _refused_everywhere(
        as_curator, curator_api, message=message,
        command=("train_classifier", "--dataset", "thin", "--arch", "small_cnn", "--folds", "3"),
        form=("train", {"train-dataset": "thin", "train-arch": "small_cnn", "train-folds": "3"}),
        api={"kind": "train_classifier", "params": {"dataset": "thin", "arch": "small_cnn", "folds": 3}})


def test_a_retrain_whose_cleaning_leaves_no_train_images_is_refused(as_curator, curator_api):
    ds = DatasetFactory(name="cleaned")
    _images(ds, "train", 3, status=Image.Status.EXCLUDED)
    _images(ds, "train", 2, flagged=True)  # doubtful and unconfirmed: --reduced drops them
    _images(ds, "test", 1)
    RunFactory(dataset=ds, status="succeeded", config={"arch": "small_cnn"})
    message = ("dataset 'cleaned' has no train images left after --reduced drops its 3 excluded and "
               "2 unconfirmed doubtful images")
    _refused_everywhere(
        as_curator, curator_api, message=message,
        command=("retrain", "--dataset", "cleaned", "--reduced"),
        form=("retrain", {"retrain-dataset": "cleaned", "retrain-reduced": "on"}),
        api={"kind": "train_classifier", "params": {"dataset": "cleaned", "arch": "small_cnn", "reduced": True}})
    # Without --reduced the same dataset trains on all five.
    call_command("train_classifier", "--dataset", "cleaned", "--arch", "small_cnn", "--no-wait",
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert Job.objects.get().params["reduced"] is False


def test_scoring_a_dataset_without_train_images_is_refused(as_curator, curator_api):
    ds = DatasetFactory(name="onlytest")
    _images(ds, "test", 3)
    _images(ds, "train", 1, status=Image.Status.EXCLUDED)
    RunFactory(dataset=ds, status="succeeded", oof_file="runs/1/oof.npz")
    _refused_everywhere(
        as_curator, curator_api, message="dataset 'onlytest' has no train-split images to score",
        command=("score_ambiguity", "--dataset", "onlytest"),
        form=("score", {"score-dataset": "onlytest", "score-threshold": "0.85"}),
        api={"kind": "score_ambiguity", "params": {"dataset": "onlytest"}})


# 2. A generate_images job that generated nothing says so


def _failing_gan(ds):
    """A finished happy/sad CycleGAN whose generators both failed the quality check at their snapshot (the
    classifier calls their outputs the target class no more often than the sources), as curation.gans.handler
    records it."""
    failing = {"target_rate": 0.10, "source_target_rate": 0.09}
    return GanModelFactory(dataset=ds, source_label=1, target_label=2, status="succeeded", epoch=1,
                           checkpoint="gans/1/last.pt",
                           losses=[{"epoch": 1, "quality": {"AB": dict(failing), "BA": dict(failing)}}])


ZERO_WARNING = ("generated 0 images: both generators failed their quality check; pass include_failing to "
                "generate anyway")


def test_generating_zero_images_ends_with_a_visible_warning(as_curator, faces):
    _failing_gan(faces)
    out = io.StringIO()
    call_command("generate_images", "--dataset", "faces", "--pair", "happy", "sad", "--n", "5", "--inline",
                 stdout=out, stderr=io.StringIO())
    job = Job.objects.get(kind="generate_images")
    assert not GeneratedImage.objects.exists()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["warning"] == ZERO_WARNING and job.message == ZERO_WARNING
    assert f"warning: {ZERO_WARNING}" in out.getvalue()
    for page in (text(as_curator.get("/jobs/")), text(as_curator.get(f"/jobs/{job.pk}/row/"))):
        row = page[page.index(f'id="job-{job.pk}"'):]
        assert '<span class="tag warning">warning</span>' in row and ZERO_WARNING in row
    assert as_curator.get(f"/api/jobs/{job.pk}/").json()["result"]["warning"] == ZERO_WARNING


def test_a_job_without_a_warning_shows_no_warning_tag(as_curator, faces):
    job = JobFactory(kind="generate_images", status=Job.Status.SUCCEEDED, message="done",
                     result={"generated": {"happy->sad": 3}})
    page = text(as_curator.get("/jobs/"))
    assert f'id="job-{job.pk}"' in page and "tag warning" not in page


# 3. The review queue before scoring


def test_the_queue_of_an_unscored_dataset_says_so_and_links_to_scoring(as_reviewer, faces):
    page = as_reviewer.get("/review/", {"dataset": "faces"})
    body = text(page)
    assert page.status_code == 200 and "data-image-id" not in body
    assert "faces has not been scored yet" in body
    assert 'href="/jobs/?start=score&dataset=faces#start-score"' in body
    assert not Image.objects.filter(claimed_by__isnull=False).exists()  # nothing was claimed
    # The htmx card (a filter change) says the same.
    assert "faces has not been scored yet" in text(as_reviewer.get("/review/", {"dataset": "faces"},
                                                                    HTTP_HX_REQUEST="true"))
    # Reviewing in import order stays possible, when asked for.
    anyway = text(as_reviewer.get("/review/", {"dataset": "faces", "unscored": "on"}))
    assert "data-image-id" in anyway and "not been scored yet" in anyway  # the notice stays above the card
    assert 'name="unscored" value="on"' in anyway  # carried through the decision form


def test_once_scored_the_queue_serves_the_most_suspicious_image_without_the_notice(as_reviewer, faces):
    image = faces.images.filter(split="train").first()
    Image.objects.filter(pk=image.pk).update(suspicion=0.7)
    body = text(as_reviewer.get("/review/", {"dataset": "faces"}))
    assert f'data-image-id="{image.pk}"' in body and "not been scored yet" not in body


def test_the_notice_is_not_shown_where_scoring_would_not_order_anything(as_reviewer, faces):
    """Scoring covers the train split: browsing test images, or a dataset with no train images, gets no notice."""
    test_image = faces.images.get(split="test")
    body = text(as_reviewer.get("/review/", {"dataset": "faces", "split": "test"}))
    assert f'data-image-id="{test_image.pk}"' in body and "not been scored yet" not in body
    only_test = DatasetFactory(name="tests-only")
    _images(only_test, "test", 1)
    assert "not been scored yet" not in text(as_reviewer.get("/review/", {"dataset": "tests-only"}))


# 4. A 404 names what was missing


@pytest.mark.parametrize("method, url, body, message", [
    ("get", "/api/datasets/nope/export.csv", None, "dataset 'nope' does not exist"),
    ("get", "/api/datasets/nope/", None, "dataset 'nope' does not exist"),
    ("get", "/api/images/424242/", None, "image 424242 does not exist"),
    ("post", "/api/images/424242/decision/", {"action": "confirm", "version": 1}, "image 424242 does not exist"),
    ("get", "/api/runs/424242/", None, "run 424242 does not exist"),
    ("get", "/api/jobs/424242/", None, "job 424242 does not exist"),
])
def test_an_api_404_names_what_is_missing(curator_api, method, url, body, message):
    response = getattr(curator_api, method)(url, body, format="json") if body else getattr(curator_api, method)(url)
    assert response.status_code == 404
    assert response.json() == {"detail": message, "code": "not_found"}


@pytest.mark.parametrize("method, url, message", [
    ("get", "/datasets/nope/", "dataset 'nope' does not exist"),
    ("get", "/datasets/nope/runs/", "dataset 'nope' does not exist"),
    ("get", "/datasets/nope/calibration/", "dataset 'nope' does not exist"),
    ("get", "/jobs/424242/row/", "job 424242 does not exist"),
    ("post", "/gans/424242/epoch/", "no CycleGAN 424242"),
    ("get", "/no-such-page/", "There is no page at /no-such-page/"),
])
def test_a_page_404_names_what_is_missing_on_a_page_that_fits_the_site(as_curator, settings, method, url, message):
    assert settings.DEBUG is False  # the production handler and its templates/404.html
    response = getattr(as_curator, method)(url)
    body = text(response)
    assert response.status_code == 404 and message in body
    assert "FER label curation" in body and 'href="/static/css/site.css"' in body  # the site's header and style
    assert 'href="/jobs/"' in body  # a way on: the signed-in user's navigation


def test_a_500_page_fits_the_site_and_says_nothing_of_the_error(client, settings):
    from django.urls import path

    def broken(request):
        raise RuntimeError("secret internals")

    from fer_site.urls import urlpatterns

    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": [path("broken/", broken), *urlpatterns]})
    client.raise_request_exception = False
    response = client.get("/broken/")
    body = text(response)
    assert response.status_code == 500 and "secret internals" not in body
    assert "FER label curation" in body and "Something went wrong on our side" in body
    assert 'href="/static/css/site.css"' in body


# 5. A version conflict says who changed the image and when


def _hhmm(change):
    return timezone.localtime(change.created_at).strftime("%H:%M")


def test_a_stale_decision_on_the_page_says_who_changed_the_image_and_when(client):

    ds = DatasetFactory(name="q")
    image = ImageFactory(dataset=ds, suspicion=0.9)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    client.force_login(alice)
    client.get("/review/", {"dataset": "q"})
    image_label_change(image_id=image.pk, action="exclude", expected_version=1, user=bob)
    at = _hhmm(LabelChange.objects.get(image=image))
    body = text(client.post("/review/decide/", {"image_id": image.pk, "version": 1, "decision": "confirm",
                                                "dataset": "q"}, HTTP_HX_REQUEST="true"))
    assert (f"Conflict: image {image.pk} changed while you looked at it: bob changed it at {at}. Your confirm was "
            f"not recorded and nothing was overwritten.") in body
    assert "someone else" not in body
    # Her own change, made in another tab, is hers: "you changed it".
    image2 = ImageFactory(dataset=ds, suspicion=0.8)
    image_label_change(image_id=image2.pk, action="confirm", expected_version=1, user=alice)
    at = _hhmm(LabelChange.objects.get(image=image2))
    body = text(client.post("/review/decide/", {"image_id": image2.pk, "version": 1, "decision": "exclude",
                                                "dataset": "q"}, HTTP_HX_REQUEST="true"))
    assert f"Conflict: image {image2.pk} changed while you looked at it: you changed it at {at}." in body


def test_the_apis_409_says_who_changed_the_image_and_when(reviewer_api, curator_api, reviewer, curator):

    image = ImageFactory(dataset=DatasetFactory(name="q"))
    image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=reviewer)
    change = LabelChange.objects.get()
    url = f"/api/images/{image.pk}/decision/"
    stale = curator_api.post(url, {"action": "exclude", "version": 1}, format="json")
    assert stale.status_code == 409
    assert stale.json() == {
        "detail": f"image {image.pk} is at version 2, not 1: rita changed it at {_hhmm(change)}",
        "code": "version_conflict", "current_version": 2, "changed_by": "rita",
        "changed_at": change.created_at.isoformat().replace("+00:00", "Z")}
    own = reviewer_api.post(url, {"action": "exclude", "version": 1}, format="json").json()
    assert own["detail"] == f"image {image.pk} is at version 2, not 1: you changed it at {_hhmm(change)}"


# 6. Internal chunk jobs stay off the home page


def test_the_home_page_and_the_jobs_command_list_top_level_jobs_not_their_chunks(as_reviewer):
    parent = JobFactory(kind="score_ambiguity", status=Job.Status.RUNNING, params={"dataset": "faces"})
    chunks = [JobFactory(kind="score_chunk", parent=parent, status=Job.Status.SUCCEEDED) for _ in range(25)]
    body = text(as_reviewer.get("/"))
    assert f"<td>{parent.pk}</td><td>score_ambiguity</td>" in body
    assert "score_chunk" not in body and not any(f"<td>{c.pk}</td>" in body for c in chunks)
    out = io.StringIO()
    call_command("jobs", stdout=out)
    assert "score_ambiguity" in out.getvalue() and "score_chunk" not in out.getvalue()


# 7. The admin link only where it leads somewhere


def test_the_admin_link_shows_only_to_staff_who_may_use_the_admin(client, curator, user):

    staff = UserFactory(username="boss", is_staff=True)
    client.force_login(staff)
    assert '<a href="/admin/">Admin</a>' in text(client.get("/"))
    assert client.get("/admin/").status_code == 200  # it leads somewhere
    for someone in (curator, user):  # a curator by group (not staff) and a reviewer: the admin would refuse them
        client.force_login(someone)
        assert 'href="/admin/"' not in text(client.get("/"))
        assert client.get("/admin/").status_code == 302


# 3. Forms default to the dataset the page is about, or the newest one


def _selected(page, key):
    """The dataset a start form of the jobs page has chosen."""
    select = re.search(rf'<select name="{key}-dataset"[^>]*>(.*?)</select>', page, re.S)
    chosen = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', select.group(1))
    return chosen.group(1) if chosen else None


def test_start_forms_choose_the_dataset_the_page_is_about_else_the_newest(as_curator, faces):
    # An older, alphabetically first dataset: the retrain that once defaulted to such a one failed at 99 %.
    tiny = DatasetFactory(name="aaa-tiny")
    type(tiny).objects.filter(pk=tiny.pk).update(created_at=faces.created_at - timezone.timedelta(days=1))
    page = text(as_curator.get("/jobs/"))
    assert _selected(page, "retrain") == "faces" and _selected(page, "score") == "faces"
    page = text(as_curator.get("/jobs/", {"dataset": "aaa-tiny"}))
    assert _selected(page, "retrain") == "aaa-tiny" and _selected(page, "train") == "aaa-tiny"
    # The dataset's pages lead there.
    assert 'href="/jobs/?dataset=faces"' in text(as_curator.get("/datasets/faces/"))
