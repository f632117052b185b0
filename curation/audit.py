"""Replay the audit trail: does every image say what its LabelChange rows say it should?

An image starts at its original label, unreviewed, version 1, reviewed by nobody. Each LabelChange (in id order)
is one call of curation.services.image_label_change, which bumps the version by one. A confirm, relabel or exclude
sets the row's new label and status and makes its user the reviewer. An undo takes back the latest decision that
still stands: label and status go back to that decision's old ones, and the reviewer becomes the user of the
decision now on top (nobody if the image is back to unreviewed or no decision is left). So the trail determines
label, status, reviewer and version; `reviewed_at` is not compared (a decision's time on the image and its row's
created_at are taken a moment apart).

Besides the final state, every row must start where the one before it left off (its old label and status), and an
undo must have a decision to take back: a row that does not is reported as a mismatch of the trail itself, which is
what a label changed behind the trail and later decided again looks like.
"""
from contextlib import contextmanager
from typing import NamedTuple

from django.db import connection, transaction

from curation.models import Image, LabelChange

BATCH = 2000


@contextmanager
def read_snapshot():
    """Every query of the default connection inside reads one snapshot of the database, without blocking writers.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction. SQLite (WAL): a deferred transaction pinned by a first
    read; Django's atomic() would BEGIN IMMEDIATE and take the write lock, holding reviewers up, so it is not used.
    Inside an atomic block already, that transaction is the snapshot."""
    if connection.in_atomic_block:
        yield
        return
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
        return
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
        try:
            cursor.execute("SELECT count(*) FROM sqlite_master")
            yield
        finally:
            cursor.execute("ROLLBACK")


class Mismatch(NamedTuple):
    image_id: int
    dataset: str
    path: str
    field: str  # label, status, reviewed_by, version; or "change N old_label" etc. for the trail itself
    stored: object
    replayed: object

    def __str__(self):
        return (f"image {self.image_id} ({self.dataset}:{self.path}): {self.field} is {self.stored!r}, "
                f"the audit trail says {self.replayed!r}")


class Report(NamedTuple):
    images: int
    changes: int
    mismatches: list


def _replay(image, changes):
    """Mismatches of one image: `image` a values() dict, `changes` its LabelChange values() dicts in id order."""
    found = []

    def bad(field, stored, replayed):
        found.append(Mismatch(image["id"], image["dataset__name"], image["path"], field, stored, replayed))

    label, status, reviewer = image["original_label"], Image.Status.UNREVIEWED.value, None
    stack = []  # decisions that stand: (change id, old label, old status, user id)
    for c in changes:
        where = f"change {c['id']} ({c['action']})"
        if (c["old_label"], c["old_status"]) != (label, status):
            bad(f"{where} old label/status", (c["old_label"], c["old_status"]), (label, status))
        if c["action"] == LabelChange.Action.UNDO:
            if not stack:
                bad(f"{where} undoes", "a decision", "none left to undo")
                label, status = c["new_label"], c["new_status"]
                continue
            _, label, status, _ = stack.pop()
            if (c["new_label"], c["new_status"]) != (label, status):
                bad(f"{where} new label/status", (c["new_label"], c["new_status"]), (label, status))
            reviewer = stack[-1][3] if stack and status != Image.Status.UNREVIEWED else None
        else:
            stack.append((c["id"], c["old_label"], c["old_status"], c["user_id"]))
            label, status, reviewer = c["new_label"], c["new_status"], c["user_id"]
    for field, stored, replayed in (("label", image["label"], label), ("status", image["status"], status),
                                    ("reviewed_by", image["reviewed_by_id"], reviewer),
                                    ("version", image["version"], 1 + len(changes))):
        if stored != replayed:
            bad(field, stored, replayed)
    return found


def labels_verify(*, dataset=None, batch=BATCH):
    """Replay the trail of every image (of `dataset`, a Dataset, or all) and return a Report: images and changes
    checked and the list of Mismatch. Reads in batches of image ids, so memory stays flat on any dataset size.
    Call it inside one snapshot (a transaction, or a backup's snapshot) for a result that no concurrent decision
    can blur; outside one, an image decided between the two reads of a batch can show up as a false mismatch."""
    images = Image.objects.all()
    if dataset is not None:
        images = images.filter(dataset=dataset)
    images = images.order_by("id").values("id", "dataset__name", "path", "original_label", "label", "status",
                                          "reviewed_by_id", "version")
    fields = ("id", "image_id", "action", "old_label", "new_label", "old_status", "new_status", "user_id")
    n_images = n_changes = 0
    mismatches = []
    after = 0
    while True:
        chunk = list(images.filter(id__gt=after)[:batch])
        if not chunk:
            break
        after = chunk[-1]["id"]
        trails = {row["id"]: [] for row in chunk}
        for c in (LabelChange.objects.filter(image_id__gte=chunk[0]["id"], image_id__lte=after)
                  .order_by("image_id", "id").values(*fields)):
            if c["image_id"] in trails:
                trails[c["image_id"]].append(c)
        for row in chunk:
            mismatches.extend(_replay(row, trails[row["id"]]))
            n_changes += len(trails[row["id"]])
        n_images += len(chunk)
    return Report(n_images, n_changes, mismatches)
