"""Where imports may read: only below the folders FER_IMPORT_ROOTS lists. A curator queues imports, but the
worker reads the server's disk, so a path outside the roots is refused, and refused with the same message
whether or not it exists (the refusal must not tell a curator which paths exist on the server)."""
from pathlib import Path

from django.conf import settings

from curation.jobs.errors import JobParamsError


class ImportPathRefused(JobParamsError):
    pass


def import_roots():
    """The configured roots, resolved (a root that is itself a symlink counts as where it points)."""
    return [Path(root).expanduser().resolve() for root in settings.FER_IMPORT_ROOTS]


def import_path_resolve(path):
    """The real path of `path` (symlinks and `..` resolved first, so neither can leave a root) if it exists below
    one of the roots; otherwise ImportPathRefused, with one message for every refusal."""
    raw = str(path or "").strip()
    if raw:
        resolved = Path(raw).expanduser().resolve()
        for root in import_roots():
            if resolved.is_relative_to(root) and resolved.exists():
                return resolved
    raise ImportPathRefused(f"path {raw!r} is not an existing file or folder below the import roots "
                            f"(FER_IMPORT_ROOTS); ask the administrator to place the data there")


def importable_entries():
    """What a curator can import: each root's top-level folders and CSV files, with the format each suggests."""
    entries = []
    for root in import_roots():
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            try:
                real = import_path_resolve(child)
            except ImportPathRefused:  # a symlink out of the root is not importable, so not offered
                continue
            if real.is_dir():
                entries.append({"path": str(child), "format": "imagefolder"})
                manifest = child / "labels.csv"
                if manifest.is_file():
                    entries.append({"path": str(manifest), "format": "csv"})
            elif real.suffix.lower() == ".csv":
                entries.append({"path": str(child), "format": "csv"})
    return entries
