"""Imports read only below FER_IMPORT_ROOTS: a curator could queue an import of any folder on the server
(/usr/share was accepted and walked), and "does not exist" told them which paths exist."""
import os

import pytest
from django.core.management import CommandError, call_command

from curation.importers.roots import (
    ImportPathRefused,
    import_path_resolve,
    importable_entries,
)
from curation.models import Job


@pytest.fixture
def roots(tmp_path, settings):
    root = tmp_path / "imports"
    (root / "faces" / "happy").mkdir(parents=True)
    (root / "labels.csv").write_text("path,label\n")
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    settings.FER_IMPORT_ROOTS = [root]
    return root, outside


def _import(api, path):
    return api.post("/api/jobs/", {"kind": "import_dataset", "params": {
        "format": "imagefolder", "path": str(path), "name": "fresh"}}, format="json")


def test_api_refuses_a_folder_outside_the_roots_with_one_message_whether_or_not_it_exists(curator_api, roots):
    root, outside = roots
    refusals = []
    for path in ("/usr/share", outside / "secret", outside / "missing", "/no/such/folder"):
        response = _import(curator_api, path)
        assert response.status_code == 400, response.content
        text = str(response.json())
        assert "FER_IMPORT_ROOTS" in text
        refusals.append(text.replace(str(path), "PATH"))
    assert len(set(refusals)) == 1, refusals
    assert not Job.objects.filter(kind="import_dataset").exists()
    assert _import(curator_api, root / "faces").status_code == 201


def test_symlinks_and_dotdot_cannot_leave_a_root(roots):
    root, outside = roots
    os.symlink(outside / "secret", root / "link")
    for path in (root / "link", root / ".." / "outside" / "secret", f"{root}/faces/../../outside/secret"):
        with pytest.raises(ImportPathRefused, match="FER_IMPORT_ROOTS"):
            import_path_resolve(path)
    assert import_path_resolve(root / "faces" / ".." / "faces") == (root / "faces").resolve()


def test_the_command_refuses_a_folder_outside_the_roots(roots, db):
    _, outside = roots
    with pytest.raises(CommandError, match="FER_IMPORT_ROOTS"):
        call_command("import_dataset", str(outside / "secret"), "--format", "imagefolder", "--name", "fresh")


def test_importable_entries_list_each_roots_folders_and_csv_files_but_not_links_out(roots):
    root, outside = roots
    os.symlink(outside / "secret", root / "link")
    entries = importable_entries()
    assert {(e["path"], e["format"]) for e in entries} == {
        (str(root / "faces"), "imagefolder"), (str(root / "labels.csv"), "csv")}
