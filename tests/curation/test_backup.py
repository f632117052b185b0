"""backup while reviewers decide, restore into a fresh database: every decision committed before the snapshot is
there, none is half there, the CSVs and the media list agree with it. Runs on the database the tests use (SQLite,
or PostgreSQL with DATABASE_URL=postgres://...), restoring with `manage.py restore` in a process of its own."""
import csv
import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from curation.models import Image
from curation.review.services import image_decide, review_undo
from tests.conftest import REPO
from tests.factories import DatasetFactory, UserFactory
from training.labels import CLASSES

IMAGES_PER_WRITER = 400


@pytest.fixture
def fresh_database(transactional_db, tmp_path):
    """A factory of URLs of new, empty databases of the kind the tests use (SQLite files, PostgreSQL databases
    created here and dropped afterwards)."""
    created = []
    s = connection.settings_dict

    def make():
        name = f"fer_restore_{uuid.uuid4().hex[:10]}"
        if connection.vendor == "sqlite":
            return f"sqlite:///{tmp_path / name}.sqlite3"
        import psycopg

        with psycopg.connect(**_pg_params(s, "postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"

    yield make
    if connection.vendor == "postgresql":
        import psycopg

        with psycopg.connect(**_pg_params(s, "postgres"), autocommit=True) as admin:
            for name in created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_params(s, dbname):
    return {"dbname": dbname, "user": s["USER"], "password": s["PASSWORD"] or None,
            "host": s["HOST"] or "127.0.0.1", "port": s["PORT"] or 5432}


def query(url, sql):
    """Rows of `sql` on the database at `url`, read without Django (its connection is the test database's)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://")) as db:
        return db.execute(sql).fetchall()


def restore(backup_dir, url, tmp_path, media_root):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="fer_site.settings.test", DATABASE_URL=url,
               FER_DATA_DIR=str(tmp_path / "restored-data"), FER_MEDIA_ROOT=str(media_root))
    return subprocess.run([sys.executable, "manage.py", "restore", str(backup_dir)], check=False, cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


class Writer(threading.Thread):
    """A reviewer deciding its images one after another through the review services, undoing every fifth
    decision; `committed` lists the LabelChange ids in the order they committed."""

    def __init__(self, user, image_ids):
        super().__init__(daemon=True)
        self.user, self.image_ids = user, image_ids
        self.committed, self.error, self.stop = [], None, threading.Event()

    def run(self):
        try:
            for n, pk in enumerate(self.image_ids):
                if self.stop.is_set():
                    break
                version = Image.objects.values_list("version", flat=True).get(pk=pk)
                action = ("confirm", "relabel", "exclude")[n % 3]
                change = image_decide(user=self.user, image_id=pk, action=action, version=version,
                                      label=(n % 7) + 1 if action == "relabel" else None).change
                self.committed.append(change.pk)
                if n % 5 == 4:
                    self.committed.append(review_undo(user=self.user).change.pk)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.error = exc
        finally:
            connection.close()


def _wait(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def dataset(transactional_db, settings):
    """Two reviewers' worth of images, each with its media file written under MEDIA_ROOT."""
    dataset = DatasetFactory(name="faces")
    rows = []
    for i in range(2 * IMAGES_PER_WRITER):
        rel = f"datasets/faces/{CLASSES[i % 8]}/{i}.png"
        data = f"face {i}".encode() * 50
        (settings.MEDIA_ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings.MEDIA_ROOT / rel).write_bytes(data)
        rows.append(Image(dataset=dataset, path=rel.removeprefix("datasets/faces/"), file=rel, width=48, height=48,
                          content_hash=hashlib.sha256(data).hexdigest(), split="train", original_label=i % 8,
                          label=i % 8))
    Image.objects.bulk_create(rows)
    return dataset


@pytest.mark.timeout(600)
def test_backup_while_reviewers_decide_then_restore_into_a_fresh_database(dataset, fresh_database, tmp_path,
                                                                          settings):
    ids = list(Image.objects.order_by("id").values_list("id", flat=True))
    writers = [Writer(UserFactory(username=f"reviewer{k}"), ids[k::2]) for k in range(2)]
    for w in writers:
        w.start()
    try:
        _wait(lambda: all(len(w.committed) >= 20 for w in writers), "decisions before the backup")
        before = {pk for w in writers for pk in list(w.committed)}
        call_command("backup", str(tmp_path / "backup"))
        during = {pk for w in writers for pk in list(w.committed)}
        _wait(lambda: all(len(w.committed) >= len(during) / 2 + 20 for w in writers), "decisions after the backup")
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(timeout=60)
    assert [w.error for w in writers] == [None, None]
    after = {pk for w in writers for pk in w.committed}
    assert during > before and after > during, "the reviewers kept deciding before, during and after the backup"

    url = fresh_database()
    done = restore(tmp_path / "backup", url, tmp_path, settings.MEDIA_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 mismatches on 0 images" in done.stdout
    assert f"media: {len(ids)} of {len(ids)} listed files present and unchanged" in done.stdout

    # Every decision committed before the backup began is there, and what is there is, for each reviewer, the
    # first decisions they made: a consistent cut, nothing later without everything earlier.
    restored = {pk for (pk,) in query(url, "SELECT id FROM curation_labelchange")}
    assert before <= restored <= after
    for w in writers:
        mine = [pk for pk in w.committed if pk in restored]
        assert mine == w.committed[:len(mine)]
    # No decision half there: each restored image says what its restored trail says (verify_labels ran above, and
    # here the version counts the trail's rows).
    images = {pk: (label, status, version) for pk, label, status, version in
              query(url, "SELECT id, label, status, version FROM curation_image")}
    trail = {}
    for (image_id,) in query(url, "SELECT image_id FROM curation_labelchange"):
        trail[image_id] = trail.get(image_id, 0) + 1
    assert len(images) == len(ids)
    assert all(version == 1 + trail.get(pk, 0) for pk, (_, _, version) in images.items())

    # The labels CSV is of the same snapshot.
    paths = dict(Image.objects.values_list("path", "id"))
    with open(tmp_path / "backup" / "labels" / "faces.csv", newline="") as f:
        exported = {paths[r["path"]]: (CLASSES.index(r["label"]), r["status"]) for r in csv.DictReader(f)}
    assert exported == {pk: (label, status) for pk, (label, status, _) in images.items()}

    # A second restore onto the now full database is refused, naming the problem; so is a backup into a
    # non-empty folder.
    again = restore(tmp_path / "backup", url, tmp_path, settings.MEDIA_ROOT)
    assert again.returncode != 0 and "is not empty (rows in" in again.stderr, again.stderr
    with pytest.raises(CommandError, match="is not an empty folder"):
        call_command("backup", str(tmp_path / "backup"))

    # A media file lost and one changed since the backup: the database comes back, and restore says which files.
    lost, changed = Image.objects.order_by("id").values_list("file", flat=True)[:2]
    (settings.MEDIA_ROOT / lost).unlink()
    (settings.MEDIA_ROOT / changed).write_bytes(b"not the same face")
    url2 = fresh_database()
    damaged = restore(tmp_path / "backup", url2, tmp_path, settings.MEDIA_ROOT)
    assert damaged.returncode != 0
    assert f"media file missing: {lost}" in damaged.stdout and f"media file different: {changed}" in damaged.stdout
    assert "database restored, but 2 media files missing or different" in damaged.stderr
    assert query(url2, "SELECT count(*) FROM curation_image") == [(len(ids),)]


def test_restore_refuses_a_folder_that_is_no_backup(transactional_db, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="has no manifest.json: not a backup, or one that did not finish"):
        call_command("restore", str(tmp_path / "empty"))


def test_restore_drops_tokens_and_sessions_and_says_so(transactional_db, fresh_database, tmp_path, settings):
    """A token or session revoked after the backup must not come back with it: restore drops them all."""
    from django.test import Client

    from curation.tokens import issue_token

    user = UserFactory(username="rita")
    issue_token(user)
    Client().force_login(user)
    call_command("backup", str(tmp_path / "backup"))
    url = fresh_database()
    done = restore(tmp_path / "backup", url, tmp_path, settings.MEDIA_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signed everyone out: 1 API token and 1 session dropped" in done.stdout
    assert query(url, "SELECT count(*) FROM knox_authtoken") == [(0,)]
    assert query(url, "SELECT count(*) FROM django_session") == [(0,)]
    assert query(url, "SELECT username FROM auth_user") == [("rita",)]
