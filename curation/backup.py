"""Backup and restore: one consistent snapshot of the database, the media manifest and the cleaned labels.

A backup folder holds:

- `database.sqlite3` (SQLite's online backup API) or `database.dump` (PostgreSQL, `pg_dump --format=custom`);
- `labels/<dataset>.csv`: each dataset's cleaned-label CSV (curation/export.py), as GET .../export.csv gives it;
- `media.csv`: relative path, size and SHA-256 of every file under MEDIA_ROOT that the database points at (the
  imported and generated images, and the snapshot, checkpoint and out-of-fold files of finished runs and
  CycleGANs). The media files themselves are not copied;
- `manifest.json`, written last (a folder without it is an unfinished backup): the engine, counts, the audit check
  of the snapshot and any referenced file that was missing or did not match its recorded hash.

The database dump, the CSVs, the media list and the audit check all read one snapshot, taken while reviewers keep
working: SQLite reads inside one deferred (WAL) read transaction, which its backup API copies from; PostgreSQL
exports the snapshot of a REPEATABLE READ transaction (pg_export_snapshot) and pg_dump reads it with --snapshot.
A decision is in the backup whole (image row and audit row) or not at all.
"""
import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from curation.audit import labels_verify, read_snapshot
from curation.export import csv_chunks
from curation.models import Dataset, GanModel, GeneratedImage, Image, LabelChange, Run
from curation.selectors import dataset_export_rows, dataset_reviewer_names

FORMAT = 1
MANIFEST = "manifest.json"
MEDIA_LIST = "media.csv"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.dump"
# Tables `migrate` fills on a new database: their rows do not make a database non-empty.
MIGRATE_TABLES = {"django_migrations", "django_content_type", "auth_permission"}
PROBLEMS_SHOWN = 20


class BackupError(Exception):
    """A backup or restore refused or failed; the message names the problem."""


def _engine():
    if connection.vendor not in ("sqlite", "postgresql"):
        raise BackupError(f"backup and restore support SQLite and PostgreSQL, not {connection.vendor}")
    return connection.vendor


def _pg_args(tool):
    """Command line and environment that point a PostgreSQL client tool at the default database."""
    path = shutil.which(tool)
    if path is None:
        raise BackupError(f"{tool} is not on PATH: install the PostgreSQL client tools (the same major version as "
                          f"the server or newer)")
    s = connection.settings_dict
    args = [path, "--dbname", s["NAME"]]
    if s.get("HOST"):
        args += ["--host", s["HOST"]]
    if s.get("PORT"):
        args += ["--port", str(s["PORT"])]
    if s.get("USER"):
        args += ["--username", s["USER"]]
    env = dict(os.environ, PGPASSWORD=s.get("PASSWORD") or "")
    return args, env


def _run(args, env, what):
    done = subprocess.run(args, check=False, env=env, capture_output=True, text=True)
    if done.returncode:
        raise BackupError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def _media_references():
    """(kind, relative path, recorded SHA-256 or "") of every file the database points at, in the snapshot."""
    refs = []
    for model, kind in ((Image, "image"), (GeneratedImage, "generated")):
        refs += [(kind, f, h) for f, h in model.objects.order_by("id").values_list("file", "content_hash")]
    for run in Run.objects.filter(status=Run.Status.SUCCEEDED).order_by("id").values(
            "snapshot_file", "checkpoint", "oof_file"):
        refs += [("run", f, "") for f in run.values() if f]
    refs += [("cyclegan", f, "") for f in GanModel.objects.exclude(status=GanModel.Status.RUNNING).exclude(
        checkpoint="").order_by("id").values_list("checkpoint", flat=True)]
    return refs


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_copy(source, target_path):
    """Copy the database of the sqlite3 connection `source` (from its open read transaction, if any) to a new,
    self-contained file (rollback journal, no -wal file beside it)."""
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()


def backup_write(directory, *, log=print):
    """Write a backup of the database and media list into `directory` (new or empty); returns the manifest."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory} is not an empty folder: a backup goes into a new or empty one")
    engine = _engine()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "labels").mkdir()
    started = datetime.datetime.now(datetime.UTC)
    with read_snapshot():
        if engine == "sqlite":
            connection.ensure_connection()
            _sqlite_copy(connection.connection, directory / SQLITE_FILE)
            database_file = SQLITE_FILE
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
            args, env = _pg_args("pg_dump")
            _run(args + ["--format=custom", f"--snapshot={snapshot}", "--file", str(directory / PG_FILE)], env,
                 "pg_dump")
            database_file = PG_FILE
        datasets = []
        for dataset in Dataset.objects.order_by("name"):
            rows = dataset_export_rows(dataset=dataset)
            with open(directory / "labels" / f"{dataset.name}.csv", "w", newline="", encoding="utf-8") as f:
                f.writelines(csv_chunks(rows, usernames=dataset_reviewer_names(dataset=dataset)))
            datasets.append(dataset.name)
        references = _media_references()
        audit = labels_verify()
        counts = {"datasets": len(datasets), "images": audit.images, "label_changes": audit.changes,
                  "users": get_user_model().objects.count()}
    log(f"database snapshot: {counts['images']} images, {counts['label_changes']} label changes, "
        f"{counts['datasets']} datasets ({database_file})")
    if audit.mismatches:
        log(f"warning: {len(audit.mismatches)} mismatches between images and their audit trail in this snapshot "
            f"(run verify_labels); the backup keeps the data as it is")

    media_root = Path(settings.MEDIA_ROOT)
    problems = []
    with open(directory / MEDIA_LIST, "w", newline="", encoding="utf-8") as f:
        f.write("path,size,sha256,kind\r\n")
        seen = set()
        for kind, rel, recorded in references:
            if rel in seen:
                continue
            seen.add(rel)
            path = media_root / rel
            if not path.is_file():
                problems.append(f"missing: {rel}")
                continue
            digest = file_sha256(path)
            if recorded and digest != recorded:
                problems.append(f"differs from the hash in the database: {rel}")
            f.write(f"{_csv_cell(rel)},{path.stat().st_size},{digest},{kind}\r\n")
    log(f"media: {len(seen) - len([p for p in problems if p.startswith('missing')])} files listed in {MEDIA_LIST} "
        f"(not copied: back up {media_root} with any file backup)")
    for problem in problems[:PROBLEMS_SHOWN]:
        log(f"warning: media file {problem}")
    manifest = {
        "format": FORMAT, "engine": engine, "database_file": database_file, "started_at": started.isoformat(),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(), "counts": counts,
        "datasets": datasets, "audit_mismatches": len(audit.mismatches), "media_files": len(seen),
        "media_problems": problems,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _csv_cell(text):
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def database_rows():
    """{table: True} of the tables of the default database that hold rows, besides those `migrate` fills."""
    full = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table in MIGRATE_TABLES:
                continue
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")
            if cursor.fetchone():
                full.append(table)
    return full


def backup_read_manifest(directory):
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a folder")
    if not path.is_file():
        raise BackupError(f"{directory} has no {MANIFEST}: not a backup, or one that did not finish")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is backup format {manifest.get('format')!r}; this version reads {FORMAT}")
    if not (directory / manifest["database_file"]).is_file():
        raise BackupError(f"{directory} lacks its database file {manifest['database_file']}")
    return manifest


def restore_database(directory, *, log=print):
    """Load the backup in `directory` into the default database, which must be empty (new, or only migrated);
    returns the manifest."""
    directory = Path(directory)
    manifest = backup_read_manifest(directory)
    engine = _engine()
    if manifest["engine"] != engine:
        raise BackupError(f"the backup is of a {manifest['engine']} database and this one is {engine}: restore it "
                          f"onto the same kind (DATABASE_URL)")
    full = database_rows()
    if full:
        name = connection.settings_dict["NAME"]
        raise BackupError(f"the database {name} is not empty (rows in {', '.join(full[:8])}"
                          f"{', ...' if len(full) > 8 else ''}): restore needs an empty one, a new SQLite file or a "
                          f"new PostgreSQL database (`migrate` alone is fine)")
    dump = directory / manifest["database_file"]
    if engine == "sqlite":
        connection.ensure_connection()
        target = connection.connection
        source = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
        try:
            source.backup(target)
        finally:
            source.close()
        connection.close()
    else:
        connection.close()
        args, env = _pg_args("pg_restore")
        _run(args + ["--clean", "--if-exists", "--no-owner", "--exit-on-error", str(dump)], env, "pg_restore")
    log(f"database restored from {dump}")
    return manifest


def restore_sign_out():
    """After a restore: drop every API token (knox's AuthToken) and every session. The dump holds those that were
    valid when it was taken, including any revoked since (a leaked token, a fired reviewer's session), and nothing
    can tell those apart. Returns (tokens, sessions) dropped."""
    from django.contrib.sessions.models import Session
    from knox.models import AuthToken

    with transaction.atomic():
        return AuthToken.objects.all().delete()[0], Session.objects.all().delete()[0]


def media_check(directory):
    """Files of the backup's media list that are missing under MEDIA_ROOT or differ from it: a list of lines."""
    import csv

    media_root = Path(settings.MEDIA_ROOT)
    problems = []
    with open(Path(directory) / MEDIA_LIST, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = media_root / row["path"]
            if not path.is_file():
                problems.append(f"missing: {row['path']}")
            elif path.stat().st_size != int(row["size"]) or file_sha256(path) != row["sha256"]:
                problems.append(f"different: {row['path']}")
    return problems


def restored_counts():
    return {"images": Image.objects.count(), "label_changes": LabelChange.objects.count()}
