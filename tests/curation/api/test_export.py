"""The cleaned-label CSV: exact columns, one row per image, what reviewers did a moment ago, safe in a spreadsheet."""
import csv
import io
import re
from datetime import datetime

import pytest

from curation.export import neutralise
from curation.models import Image
from curation.review.services import image_decide
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db

# The contract's columns, in this order, then the Datalab signals appended after them (never among them).
HEADER = ["path", "split", "original_label", "label", "status", "ambiguity", "suspicion", "reviewed_by", "reviewed_at",
          "datalab_label_quality", "datalab_label_issue", "datalab_outlier_score", "datalab_outlier",
          "datalab_near_duplicate_score", "datalab_near_duplicate_ids", "duplicate_group"]


def _export(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return response, list(csv.reader(io.StringIO(text, newline="")))


@pytest.fixture
def affect():
    ds = DatasetFactory(name="affect")
    ImageFactory(dataset=ds, path="happy/a.png", original_label=1, label=1, split="train", ambiguity=0.91,
                 suspicion=0.8)
    ImageFactory(dataset=ds, path="sad/b.png", original_label=2, label=2, split="test")
    ImageFactory(dataset=ds, path="=HYPERLINK(\"http://evil\")", original_label=0, label=0, split="val")
    ImageFactory(dataset=ds, path="-2+3.png", original_label=0, label=0)
    ImageFactory(dataset=DatasetFactory(name="other"), path="happy/a.png")  # another dataset: not exported
    return ds


def test_columns_rows_and_a_relabel_made_a_moment_before(affect, reviewer, reviewer_api):
    relabelled = Image.objects.get(dataset=affect, path="happy/a.png")
    image_decide(user=reviewer, image_id=relabelled.pk, action="relabel", label=7, version=relabelled.version)
    response, rows = _export(reviewer_api, "/api/datasets/affect/export.csv")

    assert rows[0] == HEADER
    assert len(rows) == 1 + 4  # one row per image of this dataset
    by_path = {row[0]: dict(zip(HEADER, row)) for row in rows[1:]}
    row = by_path["happy/a.png"]
    assert (row["original_label"], row["label"], row["status"], row["split"]) == ("happy", "contempt", "relabelled", "train")
    assert (float(row["ambiguity"]), float(row["suspicion"])) == (0.91, 0.8)
    assert row["reviewed_by"] == "rita"
    reviewed_at = datetime.fromisoformat(row["reviewed_at"])
    assert reviewed_at.utcoffset().total_seconds() == 0
    untouched = by_path["sad/b.png"]
    assert (untouched["label"], untouched["status"], untouched["ambiguity"], untouched["reviewed_by"],
            untouched["reviewed_at"]) == ("sad", "unreviewed", "", "", "")
    disposition = response["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="affect-labels-\d{8}T\d{6}Z\.csv"', disposition), disposition


def test_formula_looking_cells_are_neutralised(affect, reviewer_api):
    _, rows = _export(reviewer_api, "/api/datasets/affect/export.csv")
    paths = [row[0] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://evil\")" in paths
    assert "'-2+3.png" in paths
    assert not any(p.startswith(("=", "+", "-", "@")) for p in paths)


@pytest.mark.parametrize("text,safe", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("a=1", "a=1"), ("happy/1.png", "happy/1.png"), ("", ""),
])
def test_neutralise(text, safe):
    assert neutralise(text) == safe


def test_status_filter_and_leaving_out_excluded(affect, reviewer, reviewer_api):
    image = Image.objects.get(dataset=affect, path="sad/b.png")
    image_decide(user=reviewer, image_id=image.pk, action="exclude", version=1)
    _, rows = _export(reviewer_api, "/api/datasets/affect/export.csv?exclude_excluded=1")
    assert len(rows) == 1 + 3 and "sad/b.png" not in [r[0] for r in rows]
    _, rows = _export(reviewer_api, "/api/datasets/affect/export.csv?status=excluded")
    assert [r[0] for r in rows[1:]] == ["sad/b.png"]
    bad = reviewer_api.get("/api/datasets/affect/export.csv?status=maybe")
    assert bad.status_code == 400 and "status" in bad.json()["detail"]


def test_an_empty_dataset_exports_the_header_only(reviewer_api):
    DatasetFactory(name="empty")
    _, rows = _export(reviewer_api, "/api/datasets/empty/export.csv")
    assert rows == [HEADER]


def test_unknown_dataset_is_a_json_404(reviewer_api):
    response = reviewer_api.get("/api/datasets/nope/export.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 404


def test_exports_are_throttled_per_user(affect, reviewer_api, curator_api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"export": "2/min", "login": "10/min"}}
    for _ in range(2):
        assert reviewer_api.get("/api/datasets/affect/export.csv").status_code == 200
    refused = reviewer_api.get("/api/datasets/affect/export.csv")
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    assert curator_api.get("/api/datasets/affect/export.csv").status_code == 200  # someone else's count
