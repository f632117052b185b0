"""The jobs page's import form offers what is importable below FER_IMPORT_ROOTS: a <datalist> for the path field
and a list under it, at most ImportForm.SHOWN_ENTRIES entries, then "and N more"; never a path outside the roots."""
import os
import re

import pytest

from curation.models import Job
from curation.web.forms import ImportForm

pytestmark = pytest.mark.django_db


def _datalist(form):
    match = re.search(r'<datalist id="importable-paths">(.*?)</datalist>', form, re.S)
    return re.findall(r'<option value="([^"]+)">(\w+)</option>', match.group(1)) if match else []


def _import_form(page):
    match = re.search(r'<details class="start" id="start-import".*?</details>', page, re.S)
    assert match, "no import form on the jobs page"
    return match.group(0)


@pytest.fixture
def roots(tmp_path, settings):
    root = tmp_path / "imports"
    (root / "faces" / "happy").mkdir(parents=True)
    (root / "faces" / "labels.csv").write_text("path,label\n")
    (root / "fer.csv").write_text("emotion,pixels,Usage\n")
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    os.symlink(outside / "secret", root / "link-out")
    settings.FER_IMPORT_ROOTS = [root]
    return root


def test_the_import_form_offers_each_importable_path_with_its_format(as_curator, roots):
    form = _import_form(as_curator.get("/jobs/").content.decode())
    assert 'list="importable-paths"' in form and '<datalist id="importable-paths">' in form
    offered = _datalist(form)
    assert offered == [(str(roots / "faces"), "imagefolder"), (str(roots / "faces" / "labels.csv"), "csv"),
                       (str(roots / "fer.csv"), "csv")]
    listed = re.findall(r"<li><code>([^<]+)</code>", form)
    assert listed == [path for path, _ in offered]
    assert "secret" not in form and "link-out" not in form  # a link out of the root is not offered
    assert "more" not in form


def test_a_path_picked_from_the_list_starts_an_import(as_curator, roots):
    response = as_curator.post("/jobs/start/import/", {
        "import-path": str(roots / "faces"), "import-format": "imagefolder", "import-name": "picked"})
    assert response.status_code in (200, 302), response.content[:2000]
    job = Job.objects.get(kind="import_dataset")
    assert job.params["path"] == str(roots / "faces") and job.params["name"] == "picked"


def test_a_long_list_is_cut_with_how_many_more(as_curator, roots):
    for n in range(ImportForm.SHOWN_ENTRIES + 7):
        (roots / f"set{n:03d}").mkdir()
    form = _import_form(as_curator.get("/jobs/").content.decode())
    assert len(_datalist(form)) == ImportForm.SHOWN_ENTRIES
    assert len(re.findall(r"<li><code>", form)) == ImportForm.SHOWN_ENTRIES
    total = ImportForm.SHOWN_ENTRIES + 7 + 3  # the new folders and the fixture's three entries
    assert f"and {total - ImportForm.SHOWN_ENTRIES} more" in form


def test_empty_roots_say_where_data_goes(as_curator, tmp_path, settings):
    settings.FER_IMPORT_ROOTS = [tmp_path / "empty", tmp_path / "missing"]
    (tmp_path / "empty").mkdir()
    form = _import_form(as_curator.get("/jobs/").content.decode())
    assert "<datalist" not in form
    assert "Nothing importable below the import roots (FER_IMPORT_ROOTS)" in form
