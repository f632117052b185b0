"""python manage.py health_report --dataset NAME --out FILE: the dataset's health report (the page
/datasets/<name>/health/) as one self-contained HTML file, to attach to a data card: the site's style sheets inline,
the heat maps and bars as inline SVG, nothing fetched from anywhere. Its links are the site's paths."""
import os
import tempfile
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.management.base import CommandError
from django.template.loader import render_to_string

from curation.jobs.errors import JobParamsError
from curation.management.migrated import DatabaseCommand
from curation.selectors import dataset_resolve
from curation.web.health_report import dataset_health_report

STYLE_SHEETS = ("css/site.css", "css/pages.css")


def inline_css():
    """The site's style sheets the report's page uses, as one text to put in a <style>."""
    parts = []
    for name in STYLE_SHEETS:
        path = finders.find(name)
        if path:
            parts.append(Path(path).read_text(encoding="utf-8"))
    return "\n".join(parts)


def report_html(dataset):
    return render_to_string("curation/health_report_file.html",
                            {"r": dataset_health_report(dataset=dataset), "css": inline_css()})


def write_atomically(path, text):
    """Write `text` to `path` through a temporary file in the same folder, renamed into place: a reader sees the
    old file or the whole new one, never half of it. Raises CommandError naming the problem."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise CommandError(f"--out {path} is a directory: give a file name, e.g. {path / 'health.html'}")
    if not folder.is_dir():
        raise CommandError(f"--out {path}: the folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CommandError(f"--out {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CommandError(f"--out {path}: could not write it ({exc.strerror or exc}); nothing was written") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(DatabaseCommand):
    help = ("Write a dataset's health report (the /datasets/<name>/health/ page) as one self-contained HTML file: "
            "inline CSS and SVG, no external requests.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", help="the dataset's name (may be left out where only one exists)")
        parser.add_argument("--out", required=True, help="the HTML file to write (replaced whole if it exists)")

    def handle(self, *args, **options):
        try:
            dataset = dataset_resolve(name=options["dataset"])
        except JobParamsError as exc:
            raise CommandError(str(exc)) from None
        out = Path(options["out"]).expanduser()
        if out.is_dir():  # refused before the report is computed
            raise CommandError(f"--out {out} is a directory: give a file name, e.g. {out / 'health.html'}")
        if not (out.parent if str(out.parent) else Path(".")).is_dir():
            raise CommandError(f"--out {out}: the folder {out.parent} does not exist")
        write_atomically(out, report_html(dataset))
        self.stdout.write(f"wrote the health report of {dataset.name} to {out}")
