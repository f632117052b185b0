"""The dataset page reads as a page: labelled sections, words instead of the reports' raw field names, and what a
class needs before a threshold is suggested said once, however many classes lack it."""
import re

from django.urls import reverse

from curation.models import Dataset, Job
from tests.curation.conftest import CONFIRMED, RELABELLED, reviewed_image
from tests.factories import JobFactory, RunFactory

SECTIONS = ("Overview", "Labels &amp; review progress", "Agreement between reviewers", "Threshold calibration",
            "Runs", "Random audit", "Model feeding the queue", "Guidelines &amp; review settings", "Jobs")


def _page(client, name):
    return client.get(reverse("dataset", args=[name])).content.decode()


def _visible_text(page):
    """The page's text as a reader sees it: tags, attributes and comments left out."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_the_page_has_its_labelled_sections_in_order(as_reviewer, faces):
    page = _page(as_reviewer, "faces")
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == list(SECTIONS)
    for section in ("overview", "labels", "agreement", "calibration", "runs", "audit", "settings", "jobs"):
        assert f'<section id="{section}">' in page


def test_what_a_class_needs_is_said_once_and_no_raw_field_name_shows(as_reviewer, reviewed):
    # calib: happy and neutral have enough reviews; sad has 5, and five more classes have a few each.
    for label in (3, 4, 5, 6, 7):
        for k in range(3):
            reviewed_image(reviewed, label, RELABELLED if k == 0 else CONFIRMED, ambiguity=0.4, suspicion=0.3)
    Dataset.objects.filter(pk=reviewed.pk).update(reviews_required=2)
    JobFactory(kind="score_ambiguity", params={"dataset": "calib", "threshold": 0.8}, status=Job.Status.SUCCEEDED,
               message="scored 80 images")
    RunFactory(dataset=reviewed, status="succeeded", test_metrics={"accuracy": 0.712})
    page = _page(as_reviewer, "calib")
    text = _visible_text(page)
    assert text.count("20 reviewed images") == 1
    assert "A threshold is suggested for a class once it has 20 reviewed images, 5 of them relabelled or " \
           "excluded, and a threshold that flags 5 or more." in text
    calibration = _visible_text(re.search(r'<section id="calibration">(.*?)</section>', page, re.S).group(1))
    # six classes with too few reviews (sad and the five above), each row saying only so, per signal
    assert calibration.count("too few reviews") == 12 and "needs " not in calibration
    for raw in ("reviews_required", "job_params", "disputed_open", "observed_agreement", "ambiguity_threshold",
                "class_thresholds", "per_class"):
        assert raw not in text, raw
    assert "Each image needs 2 reviews." in text
    assert "Scoring succeeded scored 80 images" in text
    assert "71.2 %" in text
