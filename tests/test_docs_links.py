"""Every link in README.md and docs/*.md still leads somewhere: relative links and images to an existing file, and
every site path the documents name (as a link or in backticks) to a route of the site."""
import re
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

from curation.api.views.errors import not_found

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"`([^`\n]+)`")
# A route as the documents write one: /word/, /word/<placeholder>/..., optionally a query or a trailing "[...]".
ROUTE = re.compile(r"^(?:(?:GET|POST)\s+)?(/[A-Za-z0-9_.<>/-]*)(?:[?\[].*)?$")
SAMPLES = {"name": "demo", "id": "1"}


def _links(text):
    return [m.group(1) for m in LINK.finditer(text)]


def _relative_file_links(doc):
    for target in _links(doc.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if path.startswith("/"):
            continue  # a site route, checked below
        yield target, (doc.parent / path)


def _site_paths(doc):
    text = doc.read_text()
    candidates = [t for t in _links(text) if t.startswith("/")] + CODE.findall(text)
    for candidate in candidates:
        for part in re.split(r",\s+", candidate):
            m = ROUTE.match(part.strip())
            # File-system paths (/dev/shm, /usr/bin/chromium) are not routes: a route ends with a slash, has a
            # placeholder or a query, or is the export's .csv.
            if m and (m.group(1).endswith(("/", ".csv")) or "<" in m.group(1) or m.group(1) != part.strip()):
                yield m.group(1)


def _resolvable(path):
    path = re.sub(r"<([^>]+)>", lambda m: SAMPLES.get(m.group(1), "x"), path)
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.func is not not_found  # the API's catch-all answers 404 to any unknown /api/ path


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_to_files(doc):
    broken = [target for target, path in _relative_file_links(doc) if not path.exists()]
    assert not broken, f"{doc.name}: links to missing files: {broken}"


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_site_paths_resolve_to_routes(doc):
    broken = sorted({path for path in _site_paths(doc) if not _resolvable(path)})
    assert not broken, f"{doc.name}: paths that are no route of the site: {broken}"


def test_the_checks_catch_a_broken_link_and_route(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("![a](img/missing.png) [b](usage.md) `GET /api/nothing/<id>/` `/review/` `/no-such-page/`\n")
    (tmp_path / "usage.md").write_text("")
    assert [t for t, p in _relative_file_links(doc) if not p.exists()] == ["img/missing.png"]
    assert sorted(p for p in _site_paths(doc) if not _resolvable(p)) == ["/api/nothing/<id>/", "/no-such-page/"]


def test_the_readme_lists_every_export_column_in_order():
    from curation.export import COLUMNS

    text = re.sub(r"`,?\s*then cleanlab Datalab's\s*`", ",", (ROOT / "README.md").read_text())
    listed = re.search(r"export\.csv`, columns\s*`([^`]+)`", text).group(1)
    assert listed.split(",") == list(COLUMNS)
