"""The health report (curation/web/health_report.py) on a dataset whose figures are known to the image
(tests/curation/health_data.py): its counts, the filter behind each link finding exactly the images counted, the
API matching the page, the file the command writes, and the command's refusals."""
import json
import re
from pathlib import Path
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils.html import escape

from curation.duplicates.leaks import dataset_leaks
from curation.models import Image
from curation.review.audit import wilson
from curation.review.forms import ReviewFilterForm
from curation.review.selectors import review_queue
from curation.web.health_report import dataset_health_report
from tests.curation.health_data import EXPECTED, health_dataset
from tests.factories import DatasetFactory, ImageFactory, UserFactory


@pytest.fixture
def hd(db):
    return health_dataset()


def _figures(report):
    """{data-figure key: (n, url)} of every linked figure, read from the JSON report as the template names them."""
    out = {}
    w = report["wrong_labels"]
    if w["url"]:
        out["wrong_labels"] = (None, w["url"])
    for i in report["issues"]:
        for which in ("all", "unreviewed"):
            out[f"issues.{i['key']}.{which}"] = (i[which]["n"], i[which]["url"])
    for key in ("reviewed_confusion", "suggested_confusion"):
        for row in report[key]["rows"]:
            for c in row["cells"]:
                if c["n"]:
                    out[f"{key}.{row['name']}.{c['column']}"] = (c["n"], c["url"])
    for o in report["reviewed_confusion"]["other"]:
        out[f"reviewed_confusion.other.{o['given']}.{o['label']}.{o['status']}"] = (o["n"], o["url"])
    for c in report["classes"]:
        for which in ("before", "after"):
            out[f"classes.{c['name']}.{which}"] = (c[which]["n"], c[which]["url"])
    for st in ("unreviewed", "confirmed", "relabelled", "excluded"):
        out[f"cleaning.{st}"] = (report["cleaning"][st]["n"], report["cleaning"][st]["url"])
    return out


class _Links(HTMLParser):
    """{data-figure: (text, href)} of an HTML page's linked figures."""

    def __init__(self):
        super().__init__()
        self.found, self._open = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "data-figure" in attrs:
            self._open = [attrs["data-figure"], attrs["href"], ""]

    def handle_data(self, data):
        if self._open:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._open:
            key, href, text = self._open
            self.found[key] = (text.strip(), href)
            self._open = None


def page_figures(html):
    parser = _Links()
    parser.feed(html)
    return parser.found


def test_the_report_counts_what_the_dataset_holds(hd):
    r = dataset_health_report(dataset=hd)
    assert r["images"] == EXPECTED["images"]
    issues = {i["key"]: (i["all"]["n"], i["unreviewed"]["n"]) for i in r["issues"]}
    assert issues == EXPECTED["issues"]
    assert {k: r["cleaning"][k]["n"] for k in EXPECTED["cleaning"]} == EXPECTED["cleaning"]
    reviewed = {(row["name"], c["column"]): c["n"] for row in r["reviewed_confusion"]["rows"] for c in row["cells"]
                if c["n"]}
    assert reviewed == EXPECTED["reviewed"]
    assert [(o["given"], o["label"], o["status"], o["n"]) for o in r["reviewed_confusion"]["other"]] == [
        ("disgust", "anger", "confirmed", 1)]
    assert r["reviewed_confusion"]["pairs"][0]["given"] == "happy"
    suggested = {(row["name"], c["column"]): c["n"] for row in r["suggested_confusion"]["rows"]
                 for c in row["cells"] if c["n"]}
    assert suggested == EXPECTED["suggested"]
    classes = {c["name"]: (c["before"]["n"], c["after"]["n"]) for c in r["classes"]}
    for name, counts in EXPECTED["classes"].items():
        assert classes[name] == counts
    assert sum(b for b, _ in classes.values()) == EXPECTED["images"]
    assert sum(a for _, a in classes.values()) == EXPECTED["images"] - EXPECTED["cleaning"]["excluded"]
    # No random audit: cleanlab's estimate, and the report says so.
    flagged, scored = EXPECTED["cleanlab"]
    w = r["wrong_labels"]
    assert (w["source"], w["wrong"], w["n"]) == ("cleanlab", flagged, scored)
    assert w["estimate"] == pytest.approx(flagged / scored)
    assert "22.5 %" in w["text"] and "cleanlab" in w["text"]
    # The test leaks are the leaks panel's.
    assert issues["test_leaks"][0] == dataset_leaks(hd)["leaked_test_images"]


def test_every_link_finds_exactly_the_images_it_counts(hd):
    """Each figure's link, read back through the grid's own form and queue, finds as many images as it says; for a
    user who decided none of them (the grid leaves out the viewer's own decisions)."""
    viewer = UserFactory(username="vera")
    figures = _figures(dataset_health_report(dataset=hd))
    assert len(figures) >= 35
    for key, (n, url) in figures.items():
        if n is None:
            continue
        parts = urlsplit(url)
        assert parts.path == reverse("review_grid"), key
        form = ReviewFilterForm({k: v[0] for k, v in parse_qs(parts.query).items()})
        assert form.is_valid(), (key, form.errors)
        found = review_queue(user=viewer, dataset=form.cleaned_data["dataset"], filters=form.queue_filters())
        assert found.count() == n, (key, url, found.count(), n)


def test_a_link_leaves_out_the_images_the_filter_does_not_count(hd):
    # The happy -> sad cell: exactly the three relabelled images, not the five unreviewed happy images cleanlab
    # suggests sad for.
    r = dataset_health_report(dataset=hd)
    cell = next(c for row in r["reviewed_confusion"]["rows"] if row["name"] == "happy" for c in row["cells"]
                if c["column"] == "sad")
    query = {k: v[0] for k, v in parse_qs(urlsplit(cell["url"]).query).items()}
    form = ReviewFilterForm(query)
    assert form.is_valid()
    found = review_queue(user=UserFactory(username="vera"), dataset=hd, filters=form.queue_filters())
    assert sorted(found.values_list("path", flat=True)) == [f"relabelled-{k}.png" for k in range(3)]


def test_the_audit_estimate_comes_first_when_it_rests_on_enough_decisions(db):
    ds = DatasetFactory(name="audited")
    for k in range(25):
        wrong = k < 5
        ImageFactory(dataset=ds, path=f"a{k}.png", original_label=1, label=2 if wrong else 1,
                     status=Image.Status.RELABELLED if wrong else Image.Status.CONFIRMED, audit=True,
                     audit_key=(k + 1) / 30, label_quality=0.5, classifier_flagged=k < 10)
    w = dataset_health_report(dataset=ds)["wrong_labels"]
    low, high = wilson(5, 25)
    assert (w["source"], w["n"], w["wrong"]) == ("audit", 25, 5)
    assert (w["estimate"], w["low"], w["high"]) == (pytest.approx(0.2), pytest.approx(low), pytest.approx(high))
    assert "random audit" in w["text"] and w["url"].endswith("#audit")


def test_an_unscored_dataset_says_the_share_is_not_known(db):
    ds = DatasetFactory(name="fresh")
    ImageFactory(dataset=ds)
    w = dataset_health_report(dataset=ds)["wrong_labels"]
    assert w["source"] is None and w["estimate"] is None and "not known yet" in w["text"]


def test_the_api_gives_the_figures_the_page_shows(hd, as_reviewer, reviewer_api):
    api = reviewer_api.get(reverse("api-dataset-health", args=["hd"]))
    assert api.status_code == 200
    report = api.json()
    page = as_reviewer.get(reverse("dataset_health", args=["hd"]))
    assert page.status_code == 200
    shown = page_figures(page.content.decode())
    expected = _figures(report)
    assert set(shown) == set(expected)
    for key, (n, url) in expected.items():
        text, href = shown[key]
        assert href == url, key
        if n is not None:
            assert text == str(n) or text.startswith(f"{n} "), (key, text, n)
    assert escape(report["wrong_labels"]["text"]) in page.content.decode()


def test_the_api_documents_the_report_and_refuses_an_unknown_dataset(reviewer_api, db):
    schema = reviewer_api.get("/api/schema/?format=json").json()
    assert "/api/datasets/{name}/health/" in schema["paths"]
    answer = reviewer_api.get(reverse("api-dataset-health", args=["nope"]))
    assert answer.status_code == 404 and "nope" in answer.json()["detail"]


def test_the_dataset_page_links_the_report_and_draws_its_charts(hd, as_reviewer):
    page = as_reviewer.get(reverse("dataset", args=["hd"])).content.decode()
    assert f'href="{reverse("dataset_health", args=["hd"])}"' in page
    # The bar chart: two bars per class, the numbers of the table beside it.
    bars = re.findall(r'<rect [^>]*data-class="([a-z]+)" data-value="(\d+)"', page)
    assert ("happy", "12") in bars and ("happy", "9") in bars and len(bars) == 16
    # The heat map of given against reviewed labels, hidden from screen readers, with its table kept.
    assert re.search(r'<svg class="chart heat-map"[^>]*aria-hidden="true"', page)
    assert re.search(r'<svg class="chart class-bars"[^>]*aria-hidden="true"', page)
    table = re.search(r'<table class="heat" id="review-confusion".*?</table>', page, re.S).group(0)
    cell = re.search(r'<tr data-given="happy">.*?data-reviewed="sad"><a href="([^"]+)">3</a>', table, re.S)
    assert cell and "original_label=happy" in cell.group(1) and "status=relabelled" in cell.group(1)
    assert '<table id="classes">' in page


def test_the_command_writes_the_report_as_one_self_contained_file(hd, tmp_path):
    out = tmp_path / "hd-health.html"
    call_command("health_report", "--dataset", "hd", "--out", str(out))
    html = out.read_text()
    assert "<style>" in html and '<link rel="stylesheet"' not in html
    # Nothing fetched from anywhere: no script, no external source, no style sheet by address.
    assert "<script" not in html
    assert not re.search(r'\b(src|href)="(https?:)?//', html)
    assert not re.search(r"url\(", html)
    shown = page_figures(html)
    expected = _figures(dataset_health_report(dataset=hd))
    assert set(shown) == set(expected)
    for key, (n, url) in expected.items():
        assert shown[key][1] == url
        if n is not None:
            assert shown[key][0] == str(n) or shown[key][0].startswith(f"{n} "), key
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_the_command_refuses_an_unknown_dataset_and_a_path_it_cannot_write(hd, tmp_path):
    with pytest.raises(CommandError, match="'nope' does not exist"):
        call_command("health_report", "--dataset", "nope", "--out", str(tmp_path / "x.html"))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("health_report", "--dataset", "hd", "--out", str(tmp_path / "missing" / "x.html"))
    with pytest.raises(CommandError, match="is a directory"):
        call_command("health_report", "--dataset", "hd", "--out", str(tmp_path))
    # A folder nobody may create files in (also as root: /proc takes no new files).
    with pytest.raises(CommandError, match="cannot write in /proc"):
        call_command("health_report", "--dataset", "hd", "--out", "/proc/hd-health.html")
    assert not Path("/proc/hd-health.html").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file_whole(hd, tmp_path, monkeypatch):
    out = tmp_path / "h.html"
    out.write_text("the old report")
    import curation.management.commands.health_report as command

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(command.os, "replace", broken)
    with pytest.raises(CommandError, match="No space left on device"):
        call_command("health_report", "--dataset", "hd", "--out", str(out))
    assert out.read_text() == "the old report"
    assert list(tmp_path.iterdir()) == [out]


def test_the_report_is_json(hd):
    json.dumps(dataset_health_report(dataset=hd))


def test_each_figures_filter_gives_as_many_images_through_the_image_api(hd, reviewer_api):
    """The `filters` the API reports beside each count are the image list's: the same count comes back."""
    report = reviewer_api.get(reverse("api-dataset-health", args=["hd"])).json()
    checked = 0
    figures = [f for i in report["issues"] for f in (i["all"], i["unreviewed"])]
    figures += [f for c in report["classes"] for f in (c["before"], c["after"])]
    figures += [report["cleaning"][s] for s in ("unreviewed", "confirmed", "relabelled", "excluded")]
    figures += [c for key in ("reviewed_confusion", "suggested_confusion") for row in report[key]["rows"]
                for c in row["cells"] if c["n"]]
    for figure in figures:
        answer = reviewer_api.get(reverse("api-images"), {"dataset": "hd", "page_size": 1000, **figure["filters"]})
        assert answer.status_code == 200, (figure, answer.content)
        assert len(answer.json()["results"]) == figure["n"], figure
        checked += 1
    assert checked == 12 + 16 + 4 + 4 + 2
