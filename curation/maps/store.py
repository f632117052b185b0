"""Where a dataset's map lives and what the browser gets of it.

The map is one file per dataset, MEDIA_ROOT/maps/<dataset id>.npz: the image ids (sorted), their 2-D coordinates
(float32), and a JSON description: the run whose embeddings it projects, the embeddings file's size, modification
time and SHA-256 (its fingerprint: the map is reused until they change), the method, when and how long. It is
written to a temporary file and renamed into place, so a reader sees the old map or the new one, never half of one.

The browser gets the map as one binary answer (map_payload), little-endian, 12 bytes a point:

    header  16 bytes: b"FMAP", uint32 version (1), uint32 n (points), uint32 reserved (0)
    ids     uint32[n]  image ids, ascending
    x, y    uint16[n] each: the coordinates on one scale, the wider axis spanning 0..65535 (quantise)
    label   uint8[n]   the current label's code (0-7)
    suggested uint8[n] the classifier's suggested label at the latest scoring (255: none)
    suspicion uint8[n] round(suspicion * 254) (255: not scored)
    status  uint8[n]   index into STATUSES

Labels, suggestions, suspicion and status are read from the database at each request (reviews change them); the
coordinates come from the file. Images deleted since the map was made are left out."""
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection

from curation.classifier.features import oof_features_path
from curation.models import Image

MAGIC, VERSION = b"FMAP", 1
HEADER = 16
STATUSES = [value for value, _ in Image.Status.choices]
NONE = 255
MAX_ID = 2 ** 32 - 1


class MapUnavailable(Exception):
    """No map can be made or shown; the message says why and what to do."""


def map_path(dataset):
    return Path(settings.MEDIA_ROOT) / "maps" / f"{dataset.pk}.npz"


def embeddings_fingerprint(run):
    """{"run", "size", "mtime_ns"} of `run`'s embeddings file (oof_features.npy), or None when it has none."""
    path = oof_features_path(run) if run is not None else None
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        stat = None
    if stat is None:
        return None
    return {"run": run.pk, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def map_read(dataset):
    """(ids int64 ascending, xy float32 (n, 2), meta dict) of the dataset's stored map, or None when it has none."""
    path = map_path(dataset)
    try:
        with np.load(path) as data:
            return data["ids"], data["xy"], json.loads(str(data["meta"]))
    except FileNotFoundError:
        return None


def map_write(dataset, ids, xy, meta):
    """Store the map (ids need not be sorted: they are stored ascending, with their rows), replacing any before it
    in one rename."""
    order = np.argsort(ids, kind="stable")
    path = map_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, ids=np.asarray(ids, np.int64)[order], xy=np.asarray(xy, np.float32)[order],
                     meta=np.array(json.dumps(meta)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def map_is_current(meta, fingerprint):
    """Whether a map made from `meta`'s embeddings still describes the embeddings `fingerprint` names."""
    if meta is None or fingerprint is None:
        return False
    made = meta.get("embeddings") or {}
    return all(made.get(key) == fingerprint[key] for key in ("run", "size", "mtime_ns"))


def quantise(xy):
    """(x uint16, y uint16): the coordinates on one scale for both axes (the map's wider axis spans 0..65535, the
    other less, from 0), so distances keep their proportions; a map of one place sits at 0."""
    if len(xy) == 0:
        return np.zeros(0, np.uint16), np.zeros(0, np.uint16)
    low, high = xy.min(0).astype(np.float64), xy.max(0).astype(np.float64)
    span = float((high - low).max()) or 1.0
    q = np.rint((xy - low) / span * 65535).astype(np.uint16)
    return q[:, 0], q[:, 1]


def _image_columns(dataset):
    """(ids, label, suggested, suspicion, status) arrays of the dataset's train images, by id: one query whose
    columns are all numbers (NULL as -1, the status as its index), read through the database cursor into one float64
    array (ids are exact there up to 2**53): no model objects, no per-row Python."""
    table = Image._meta.db_table
    status_case = " ".join(f"WHEN %s THEN {i}" for i in range(len(STATUSES)))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, label, COALESCE(classifier_suggested_label, -1), COALESCE(suspicion, -1.0), "
                       f"CASE status {status_case} ELSE 0 END FROM {table} WHERE dataset_id = %s AND split = %s "
                       f"ORDER BY id", [*STATUSES, dataset.pk, Image.Split.TRAIN])
        rows = np.array(cursor.fetchall(), dtype=np.float64).reshape(-1, 5)
    ids = rows[:, 0].astype(np.int64)
    label = rows[:, 1].astype(np.uint8)
    suggested = np.where(rows[:, 2] < 0, NONE, rows[:, 2]).astype(np.uint8)
    suspicion = np.where(rows[:, 3] < 0, NONE, np.rint(np.clip(rows[:, 3], 0.0, 1.0) * 254)).astype(np.uint8)
    status = rows[:, 4].astype(np.uint8)
    return ids, label, suggested, suspicion, status


def map_payload(dataset, stored):
    """The binary form above of `stored` (map_read's answer), with the images' current labels, suggestions,
    suspicion and status. Raises MapUnavailable for an id beyond uint32 (none in practice)."""
    ids, xy, _ = stored
    db_ids, label, suggested, suspicion, status = _image_columns(dataset)
    at = np.searchsorted(db_ids, ids)
    at_clipped = np.minimum(at, max(len(db_ids) - 1, 0))
    keep = (at < len(db_ids)) & (db_ids[at_clipped] == ids) if len(db_ids) else np.zeros(len(ids), bool)
    ids, rows = ids[keep], at_clipped[keep]
    if len(ids) and ids[-1] > MAX_ID:
        raise MapUnavailable(f"image id {int(ids[-1])} is too large for the map's 32-bit ids")
    x, y = quantise(xy[keep])
    n = len(ids)
    header = MAGIC + np.array([VERSION, n, 0], "<u4").tobytes()
    return b"".join([header, ids.astype("<u4").tobytes(), x.astype("<u2").tobytes(), y.astype("<u2").tobytes(),
                     label[rows].tobytes(), suggested[rows].tobytes(), suspicion[rows].tobytes(),
                     status[rows].tobytes()])


def map_payload_decode(data):
    """The payload back as arrays (tests, the benchmark and scripts read it with this): {"ids", "x", "y", "label",
    "suggested", "suspicion", "status"}."""
    if data[:4] != MAGIC:
        raise ValueError("not a dataset map payload (no FMAP header)")
    version, n, _ = np.frombuffer(data[4:HEADER], "<u4")
    if version != VERSION:
        raise ValueError(f"map payload version {version}; this reads {VERSION}")
    n = int(n)
    out, at = {}, HEADER
    for name, dtype, size in (("ids", "<u4", 4), ("x", "<u2", 2), ("y", "<u2", 2), ("label", "u1", 1),
                              ("suggested", "u1", 1), ("suspicion", "u1", 1), ("status", "u1", 1)):
        out[name] = np.frombuffer(data, dtype, n, at)
        at += n * size
    if at != len(data):
        raise ValueError(f"map payload of {len(data)} bytes; {n} points take {at}")
    return out
