"""An import never dies on its input's encoding, an import with nothing usable claims no name, and a job that fails
shows one line, never a traceback (the worker's log keeps that)."""
import io
import logging

import pytest
from django.core.management import CommandError, call_command

from curation.jobs.runner import job_run
from curation.models import Dataset, Image, Job
from tests.curation.test_importers import rows, run_import
from tests.factories import JobFactory
from tests.images import write_bytes, write_png

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_jobs")]


def _failed_import(path, fmt, name):
    with pytest.raises(CommandError) as err:
        call_command("import_dataset", str(path), "--format", fmt, "--name", name, "--inline",
                     stdout=io.StringIO(), stderr=io.StringIO())
    return Job.objects.get(kind="import_dataset"), str(err.value)


def test_a_latin1_manifest_is_read_as_latin1_and_the_job_says_so(tmp_path):
    root = tmp_path / "m"
    write_png(root / "café" / "a.png", seed=1)  # names on disk are UTF-8
    write_png(root / "b.png", seed=2)
    # A spreadsheet saved as "CSV (Windows)": é is the single byte 0xE9, at offset 16.
    (root / "labels.csv").write_bytes("path,label\nb.png,sad\ncafé/a.png,happy\n".encode("latin-1"))

    result, _ = run_import(root / "labels.csv", "csv", "latin")

    assert set(rows("latin")) == {"b.png", "café/a.png"}
    assert result["manifest_encoding"] == "latin-1"
    job = Job.objects.get(kind="import_dataset")
    assert job.message == result["warning"]
    assert "labels.csv is not UTF-8 (byte 24 is 0xe9): read as Latin-1" in job.message


def test_a_utf8_manifest_says_nothing_about_its_encoding(tmp_path):
    root = tmp_path / "m"
    write_png(root / "café" / "a.png", seed=1)
    (root / "labels.csv").write_text("path,label\ncafé/a.png,happy\n", encoding="utf-8-sig")
    result, _ = run_import(root / "labels.csv", "csv", "utf8")
    assert set(rows("utf8")) == {"café/a.png"}
    assert result["manifest_encoding"] == "utf-8" and "warning" not in result


def test_a_fer2013_csv_in_latin1_imports(tmp_path):
    pixels = " ".join(["7"] * 48 * 48)
    # An extra column whose name has a Latin-1 byte (é).
    (tmp_path / "fer2013.csv").write_bytes(f"emotion,pixels,Usage,remarque\n3,{pixels},Training,ok\n".encode()
                                           .replace(b"remarque", b"r\xe9marque"))
    result, _ = run_import(tmp_path / "fer2013.csv", "fer2013", "fer")
    assert result["added"] == 1 and result["manifest_encoding"] == "latin-1"
    assert "fer2013.csv is not UTF-8 (byte 22 is 0xe9): read as Latin-1" in result["warning"]


def test_a_manifest_that_is_not_text_is_refused_in_one_line_naming_the_file_and_offset(tmp_path, settings):
    root = tmp_path / "m"
    write_png(root / "a.png", seed=1)
    (root / "labels.csv").write_text("path,label\na.png,happy\n", encoding="utf-16")  # NUL bytes from byte 3

    job, message = _failed_import(root / "labels.csv", "csv", "wide")

    assert job.status == Job.Status.FAILED
    assert "labels.csv is not a text file (byte 3 is NUL)" in job.message
    assert "\n" not in job.message and "\n" not in job.error and "Traceback" not in job.error
    assert not Dataset.objects.exists() and not (settings.MEDIA_ROOT / "datasets").exists()


def test_a_csv_row_the_csv_reader_refuses_is_a_bad_row_not_a_failed_import(tmp_path):
    root = tmp_path / "m"
    write_png(root / "a.png", seed=1)
    (root / "labels.csv").write_text("path,label\n" + "x" * 200_000 + ",happy\na.png,happy\n")
    result, _ = run_import(root / "labels.csv", "csv", "huge")
    assert set(rows("huge")) == {"a.png"}
    assert [b["reason"] for b in result["bad"]] == ["bad_csv_row"]
    assert "line 2" in result["bad"][0]["detail"]


def test_an_import_with_no_usable_file_creates_no_dataset_and_says_why(tmp_path, settings):
    root = tmp_path / "faces"
    write_bytes(root / "happy" / "a.png", b"not an image at all")
    write_png(root / "bored" / "b.png", seed=1)

    job, message = _failed_import(root, "imagefolder", "empty")

    assert job.status == Job.Status.FAILED
    assert "no usable image" in job.message and "2 file(s)" in job.message, job.message
    assert "not_image" in job.message and "unknown_label" in job.message
    assert "'empty' was not created" in job.message
    assert not Dataset.objects.exists() and not Image.objects.exists()
    # The name stays free: a good import takes it.
    write_png(root / "happy" / "c.png", seed=2)
    result, _ = run_import(root, "imagefolder", "empty")
    assert result["added"] == 1


def test_a_failed_job_stores_one_line_and_logs_the_traceback(tmp_path, client, curator, caplog):
    """A job whose handler raises what nobody foresaw (here: an import row without its format): the row, the jobs
    page and the API show the exception's one line; the traceback is in the worker's log only."""
    job = JobFactory(kind="import_dataset", params={"name": "broken", "path": str(tmp_path)})
    with caplog.at_level(logging.ERROR, logger="curation.jobs.runner"):
        assert job_run(job_id=job.pk) == Job.Status.FAILED
    job.refresh_from_db()
    assert job.message == "failed: KeyError: 'format'"
    assert job.error == "KeyError: 'format'"
    assert any(r.exc_info and "Traceback" not in r.getMessage() for r in caplog.records)
    assert "Traceback" in caplog.text
    client.force_login(curator)
    for page in ("/jobs/", f"/api/jobs/{job.pk}/"):
        body = client.get(page).content.decode()
        assert "KeyError: &#x27;format&#x27;" in body or "KeyError: 'format'" in body, page
        assert "Traceback" not in body and "File \"" not in body, page
