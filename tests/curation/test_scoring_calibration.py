"""Threshold calibration from reviews: reviewed images whose truth the test sets (the `reviewed` fixture in
tests/curation/conftest.py), the thresholds it suggests, the API that returns it and the page that shows it."""
import json
import shlex

import pytest
from django.test import Client
from rest_framework.test import APIClient

from curation.management.commands.score_ambiguity import Command as ScoreCommand
from curation.models import Job
from curation.scoring.calibration import threshold_calibration
from tests.factories import DatasetFactory, ImageFactory, JobFactory, UserFactory

pytestmark = pytest.mark.django_db


def _row(report, signal, threshold, label):
    return next(r for r in report[signal] if r["threshold"] == threshold and r["label"] == label)


def test_precision_and_recall_per_threshold_and_class(reviewed):
    report = threshold_calibration(dataset=reviewed, precision=0.8, thresholds=[0.8, 0.9])
    assert (report["reviewed"], report["wrong"]) == (30 + 5 + 20, 8 + 3 + 5)  # unreviewed and val images left out
    assert _row(report, "ambiguity", 0.8, "happy") == {"threshold": 0.8, "label": "happy", "flagged": 10,
                                                       "wrong": 8, "precision": 0.8, "recall": 1.0}
    assert _row(report, "ambiguity", 0.9, "happy") == {"threshold": 0.9, "label": "happy", "flagged": 2,
                                                       "wrong": 0, "precision": 0.0, "recall": 0.0}
    assert _row(report, "ambiguity", 0.8, "all")["recall"] == 0.5  # the 8 of 16 wrong ones that have an SSIM
    assert _row(report, "ambiguity", 0.8, "neutral") == {"threshold": 0.8, "label": "neutral", "flagged": 0,
                                                         "wrong": 0, "precision": None, "recall": 0.0}
    assert {r["label"] for r in report["ambiguity"]} == {"all", "neutral", "happy", "sad"}


def test_the_lowest_threshold_that_reaches_the_precision_per_class(reviewed):
    at = {p: threshold_calibration(dataset=reviewed, precision=p)["suggested"] for p in (0.5, 0.8, 0.9)}
    happy = at[0.8]["happy"]
    assert (happy["ambiguity_threshold"], happy["ambiguity_precision"], happy["ambiguity_recall"],
            happy["ambiguity_flagged"]) == (0.8, 0.8, 1.0, 10)
    assert at[0.5]["happy"]["ambiguity_threshold"] == 0.64  # 8 wrong of 16 flagged; at 0.63, 8 of 17
    assert at[0.9]["happy"]["ambiguity_threshold"] is None
    assert "no threshold reaches precision 0.9" in at[0.9]["happy"]["ambiguity_reason"]
    assert "best 0.8 at 0.8" in at[0.9]["happy"]["ambiguity_reason"]
    # Too few reviews: says how many are needed and how many there are.
    assert at[0.8]["sad"]["ambiguity_threshold"] is None
    assert at[0.8]["sad"]["ambiguity_reason"] == ("needs 20 reviewed images with 5 relabelled or excluded; "
                                                  "has 5 with 3")
    # neutral has no SSIM at all, but its suspicion separates: 5 wrong of the 10 at or above 0.20 (0.5 at 0.5).
    assert at[0.5]["neutral"]["ambiguity_reason"] == "no reviewed image has this score"
    assert at[0.5]["neutral"]["suspicion_threshold"] == 0.2 and at[0.5]["neutral"]["suspicion_flagged"] == 10
    assert at[0.8]["all"]["ambiguity_threshold"] == 0.8


def test_the_suggested_command_is_one_score_ambiguity_accepts(reviewed):
    JobFactory(kind="score_ambiguity", status=Job.Status.SUCCEEDED,
               params={"dataset": "calib", "threshold": 0.7, "class_thresholds": {"sad": 0.6}})
    report = threshold_calibration(dataset=reviewed, precision=0.8)
    assert report["current"] == {"job": Job.objects.get().pk, "threshold": 0.7, "class_thresholds": {"sad": 0.6}}
    line = report["command"]
    assert line == "python manage.py score_ambiguity --dataset calib --threshold 0.8 --class-threshold happy=0.8"
    command = ScoreCommand()
    options = vars(command.create_parser("manage.py", "score_ambiguity").parse_args(shlex.split(line)[3:]))
    params = command.job_params(options)
    assert params["threshold"] == report["job_params"]["threshold"] == 0.8
    assert {k: float(v) for k, v in params["class_thresholds"].items()} == report["job_params"]["class_thresholds"]


def test_without_reviews_nothing_is_suggested_and_bad_precision_is_refused():
    ds = DatasetFactory(name="fresh")
    ImageFactory(dataset=ds, ambiguity=0.9, suspicion=0.9)
    report = threshold_calibration(dataset=ds)
    assert report["reviewed"] == 0 and report["command"] is None and report["ambiguity"] == []
    assert report["current"] == {"job": None, "threshold": 0.85, "class_thresholds": {}}
    assert report["suggested"]["all"]["ambiguity_reason"].startswith("needs 20 reviewed images")
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="precision must be a number in"):
            threshold_calibration(dataset=ds, precision=bad)


# --- the API --------------------------------------------------------------------------------------------------

def test_api_returns_the_calibration_to_reviewers_and_curators(reviewed, reviewer_api, curator_api):
    for client in (reviewer_api, curator_api):
        response = client.get("/api/datasets/calib/calibration/?precision=0.8")
        assert response.status_code == 200
        body = response.json()
        assert body["precision"] == 0.8 and body["suggested"]["happy"]["ambiguity_threshold"] == 0.8
        assert body["command"].endswith("--threshold 0.8 --class-threshold happy=0.8")
        assert body["job_params"] == {"dataset": "calib", "threshold": 0.8, "class_thresholds": {"happy": 0.8}}
        # Every field of the selector's report, as it is: the output serializer drops and renames nothing.
        assert body == json.loads(json.dumps(threshold_calibration(dataset=reviewed, precision=0.8)))
    assert reviewer_api.get("/api/datasets/calib/calibration/").json()["precision"] == 0.5  # the default
    assert APIClient().get("/api/datasets/calib/calibration/").status_code == 401


@pytest.mark.parametrize("bad", ["0", "1.01", "-1", "abc", "nan", "inf"])
def test_api_refuses_a_bad_precision_with_400(reviewed, reviewer_api, bad):
    response = reviewer_api.get(f"/api/datasets/calib/calibration/?precision={bad}")
    assert response.status_code == 400
    assert "precision" in response.json()["detail"]


def test_api_404_for_an_unknown_dataset_and_queries_do_not_grow_with_images(reviewed, reviewer_api,
                                                                            django_assert_max_num_queries):
    assert reviewer_api.get("/api/datasets/nope/calibration/").status_code == 404
    with django_assert_max_num_queries(4):  # token, dataset, images, latest scoring job
        assert reviewer_api.get("/api/datasets/calib/calibration/").status_code == 200


# --- the page --------------------------------------------------------------------------------------------------

def test_page_shows_the_table_the_suggestions_and_a_copyable_command(reviewed):
    client = Client()
    assert client.get("/datasets/calib/calibration/").status_code == 302  # login first
    client.force_login(UserFactory(username="rita"))  # a reviewer may read it
    page = client.get("/datasets/calib/calibration/?precision=0.8")
    assert page.status_code == 200
    html = page.content.decode()
    assert ('<pre class="copy" id="command">python manage.py score_ambiguity --dataset calib --threshold 0.8 '
            '--class-threshold happy=0.8</pre>') in html
    assert "needs 20 reviewed images with 5 relabelled or excluded; has 5 with 3" in html
    assert 'id="table-ambiguity"' in html and 'id="table-suspicion"' in html
    assert '<span class="p">0.8</span> (10) · 1.0' in html  # happy at 0.8: precision (flagged) · recall
    bad = client.get("/datasets/calib/calibration/?precision=2")
    assert bad.status_code == 400 and "precision must be a number in (0, 1], not 2" in bad.content.decode()
    assert client.get("/datasets/nope/calibration/").status_code == 404
