"""Review-calibrated relabels and trusted labels: the calibration by suspicion band, the rule a precision target
picks, what a run trains each image on (recorded in its snapshot), and the refusals of a bad target."""
import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.classifier.relabels import MIN_REVIEWED, relabel_calibration, relabel_rule
from curation.classifier.selection import select_training_data
from curation.models import Image, Job, Run
from curation.services import image_label_change
from tests.curation.conftest import square_dataset
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.usefixtures("inline_jobs")


def suspect(ds, suspicion, *, suggested=2, label=1, **kw):
    return ImageFactory(dataset=ds, label=label, original_label=label, suspicion=suspicion,
                        classifier_suggested_label=suggested, **kw)


def decide(image, user, *, chose_suggestion):
    if chose_suggestion:
        image_label_change(image_id=image.pk, action="relabel", label=image.classifier_suggested_label,
                           expected_version=1, user=user)
    else:
        image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=user)


@pytest.fixture
def calibrated(db, user):
    """Reviewers looked at three strata: at 0.95, 20 decisions, 18 chose the suggestion (90 %); at 0.92, 20, 17 of
    them (85 %); at 0.65, 20, 8 of them (40 %). Unreviewed: 5 images at 0.92, 7 at 0.62, 9 at 0.55 (a stratum nobody
    looked at), and images the rule must never touch."""
    ds = DatasetFactory()
    for k in range(20):
        decide(suspect(ds, 0.95), user, chose_suggestion=k < 18)
        decide(suspect(ds, 0.92), user, chose_suggestion=k < 17)
        decide(suspect(ds, 0.65), user, chose_suggestion=k < 8)
    high = [suspect(ds, 0.92) for _ in range(5)]
    middle = [suspect(ds, 0.62) for _ in range(7)] + [suspect(ds, 0.55) for _ in range(9)]
    agrees = suspect(ds, 0.99, suggested=1)  # the classifier agrees with its label: nothing to relabel
    test = suspect(ds, 0.99, split="test")  # never a train image
    return ds, high, middle, agrees, test


def test_calibration_counts_each_band_and_stratum_in_one_query(calibrated):
    ds = calibrated[0]
    with CaptureQueriesContext(connection) as queries:
        bands = {b["threshold"]: b for b in relabel_calibration(ds)}
    assert len(queries) == 1
    assert bands[0.9] == {"threshold": 0.9, "reviewed": 40, "chose_suggested": 35, "precision": 35 / 40,
                          "unreviewed": 5, "stratum_reviewed": 20, "stratum_precision": 17 / 20}
    assert bands[0.6]["reviewed"] == 60 and bands[0.6]["chose_suggested"] == 43 and bands[0.6]["unreviewed"] == 12
    assert bands[0.6]["stratum_reviewed"] == 20 and bands[0.6]["stratum_precision"] == pytest.approx(0.4)
    assert bands[0.5]["stratum_reviewed"] == 0 and bands[0.5]["stratum_precision"] is None


def test_a_target_reaches_down_only_through_bands_reviewers_measured(calibrated):
    ds = calibrated[0]
    # Above 0.5 the band as a whole reaches 72 % (43 of 60), but its images between 0.5 and 0.6 were never looked
    # at and those between 0.6 and 0.7 were right 40 % of the time: a 60 % target stops at 0.9, above the strata
    # nobody measured (0.7-0.9).
    assert bands_rule(ds, 0.6) == (0.9, 5)
    assert bands_rule(ds, 0.85) == (0.9, 5)
    # 0.9 is reached only by the top stratum (90 %), where every image is reviewed.
    assert bands_rule(ds, 0.9) == (0.95, 0)
    none = relabel_rule(ds, 0.95)
    assert none["threshold"] is None and none["images"] == 0
    assert none["reason"] == "no band reaches 95%: at suspicion >= 0.95 reviewers chose the suggestion 90% of 20 times"
    assert MIN_REVIEWED == 20


def test_a_rule_needs_the_top_band_measured(db, user):
    ds = DatasetFactory()
    for k in range(20):  # 20 decisions below the top band only
        decide(suspect(ds, 0.91), user, chose_suggestion=True)
    suspect(ds, 0.97)
    rule = relabel_rule(ds, 0.5)
    assert rule["threshold"] is None
    assert rule["reason"].startswith("the top band, suspicion >= 0.95, has 0 reviewed images")
    assert relabel_rule(DatasetFactory(), 0.5)["reason"].startswith("no suspicion band has 20 reviewed images")


def bands_rule(ds, precision):
    rule = relabel_rule(ds, precision)
    return rule["threshold"], rule["images"]


def test_relabels_are_training_targets_and_reviewed_labels_are_trusted(calibrated, user):
    ds, high, middle, agrees, test = calibrated
    rule = relabel_rule(ds, 0.85)
    sel = select_training_data(dataset=ds, reduced=True, doubtful="classifier", relabel_above=rule["threshold"])
    items = {i.id: i for i in sel.train}
    for image in high:  # trained on the suggestion; the stored label is what it was
        assert (items[image.pk].label, items[image.pk].target, items[image.pk].trusted) == (1, 2, False)
        image.refresh_from_db()
        assert image.label == 1 and image.status == Image.Status.UNREVIEWED
    for image in middle + [agrees]:
        assert items[image.pk].target == items[image.pk].label == 1
    assert [i.target for i in sel.test] == [1]
    reviewed = Image.objects.filter(dataset=ds).exclude(status=Image.Status.UNREVIEWED)
    assert {items[i.pk].trusted for i in reviewed} == {True}
    assert sel.counts["trusted"] == 60 and sel.counts["relabelled_calibrated"] == 5

    # An image cleanlab flagged would be dropped as doubtful, unless the rule trains it on the suggestion.
    flagged = suspect(ds, 0.97, classifier_flagged=True)
    without = select_training_data(dataset=ds, reduced=True, doubtful="classifier")
    with_rule = select_training_data(dataset=ds, reduced=True, doubtful="classifier", relabel_above=0.9)
    assert flagged.pk not in {i.id for i in without.train}
    assert {i.id: i.target for i in with_rule.train}[flagged.pk] == 2

    rows = list(csv.DictReader(io.StringIO(with_rule.snapshot_csv())))
    assert list(rows[0]) == ["split", "source", "id", "path", "label", "trusted", "target"]
    row = next(r for r in rows if r["id"] == str(flagged.pk))
    assert (row["label"], row["trusted"], row["target"]) == ("happy", "0", "sad")


@pytest.mark.django_db
def test_a_run_records_its_rule_and_trains_on_the_targets(tmp_path, settings, user):
    name = square_dataset(tmp_path)
    train = list(Image.objects.filter(dataset__name=name, split="train").order_by("id"))
    # Scores as a scoring job would leave them: 25 decisions that chose the suggestion, 10 images left unreviewed.
    for k, image in enumerate(train[:35]):
        Image.objects.filter(pk=image.pk).update(suspicion=0.95, classifier_suggested_label=(image.label + 1) % 8)
        if k < 25:
            image.refresh_from_db()
            decide(image, user, chose_suggestion=True)
    err = io.StringIO()
    call_command("retrain", "--dataset", name, "--arch", "small_cnn", "--epochs", "1", "--batch-size", "32",
                 "--reduced", "--relabel-precision", "0.9", "--inline", stdout=io.StringIO(), stderr=err)
    assert "relabels at 90% precision: 10 unreviewed images above suspicion 0.95" in err.getvalue()
    run = Run.objects.get()
    assert run.selection["relabel_rule"]["images"] == 10 and run.selection["relabelled_calibrated"] == 10
    rows = list(csv.DictReader((Path(settings.MEDIA_ROOT) / run.snapshot_file).open()))
    unreviewed = {str(i.pk): i for i in train[25:35]}
    assert all(r["target"] != r["label"] for r in rows if r["id"] in unreviewed)
    assert sum(r["trusted"] == "1" for r in rows) == 25
    for image in train[25:35]:
        image.refresh_from_db()
        assert image.label == image.original_label


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_a_bad_precision_target_is_refused_everywhere_and_nothing_is_queued(value, curator_api, as_curator):
    ds = DatasetFactory()
    ImageFactory(dataset=ds)
    ImageFactory(dataset=ds, split="test")
    with pytest.raises(CommandError, match=r"relabel precision must be in \(0, 1\]"):
        call_command("retrain", "--dataset", ds.name, "--relabel-precision", value, "--inline")
    response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
        "dataset": ds.name, "reduced": True, "relabel_precision": float(value)}}, format="json")
    assert response.status_code == 400 and "relabel precision must be in (0, 1]" in str(response.json())
    page = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": ds.name, "retrain-reduced": "on",
                                                  "retrain-relabel_precision": value})
    assert "relabel precision must be in (0, 1]" in page.content.decode()
    assert not Job.objects.exists()
