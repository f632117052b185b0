"""Reading and judging a user's own model's predictions (and optionally its embeddings) before any of it is stored.

A predictions file is a CSV or Parquet table: a `path` column (the image's path in the dataset, as imported) and
eight class columns, either named by the classes (any accepted spelling: happy, happiness, angry...) in any order,
or named otherwise and read in AffectNet's order (neutral, happy, sad, surprise, fear, disgust, anger, contempt).
Each row is either probabilities (every value in [0, 1], summing to 1 within SUM_TOLERANCE) or, when any value of
the file lies outside [0, 1], logits, which are softmaxed row by row (and the import says so).

Embeddings are a .npy array with one row per predictions row (in the file's row order), or a Parquet table keyed
by `path` (the same paths) with either one list column or numeric columns.

Everything is read and checked in memory first: a file with any bad row is refused whole (PredictionsRefused,
naming the first bad row), so nothing is ever half-imported. Numpy only, plus pyarrow for Parquet (installed with
cleanlab's `datasets`), imported only when a Parquet file is read.
"""
import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation.jobs.errors import JobParamsError
from training.labels import CLASSES, UnknownLabel, parse_label

EXACT_SUM = 1e-6  # a row summing to 1 within this is kept as given; beyond it, renormalised
SUM_TOLERANCE = 0.01  # a probability row may sum to 1 +- this (CSV rounding); it is then renormalised
PREDICTION_SUFFIXES = (".csv", ".parquet")
EMBEDDING_SUFFIXES = (".npy", ".parquet")


class PredictionsRefused(JobParamsError):
    """A predictions or embeddings file that cannot be imported; the message names the first bad row or column."""


@dataclass
class Predictions:
    paths: list  # one per row, in the file's order
    image_ids: np.ndarray  # int64, the dataset's image for each row
    probs: np.ndarray  # float64 (rows, 8), each row summing to 1
    softmaxed: bool  # the file held logits, softmaxed here
    columns: str  # "named" or "affectnet order"
    sha256: str


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _table(path):
    """(header, rows of raw values) of a CSV or Parquet file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is None:
                    raise PredictionsRefused(f"{Path(path).name} is empty: expected a header row (path and 8 classes)")
                return [h.strip() for h in header], [row for row in reader if row]
        except UnicodeDecodeError as exc:
            raise PredictionsRefused(f"{Path(path).name} is not UTF-8 text: {exc}") from None
        except csv.Error as exc:
            raise PredictionsRefused(f"{Path(path).name} is not a readable CSV: {exc}") from None
    if suffix == ".parquet":
        table = _parquet(path)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        return [str(n).strip() for n in table.column_names], [list(r) for r in zip(*columns)]
    raise PredictionsRefused(f"{Path(path).name}: a predictions file is {' or '.join(PREDICTION_SUFFIXES)}, "
                             f"not {suffix or 'a file without a suffix'}")


def _parquet(path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
        raise PredictionsRefused(f"{Path(path).name} is not a readable Parquet file: {exc}") from None


def class_columns(header):
    """(index of the path column, [column index of class 0..7], "named" or "affectnet order") of a header."""
    lowered = [h.lower() for h in header]
    if lowered.count("path") != 1:
        raise PredictionsRefused(f"the header {header} needs exactly one `path` column")
    at_path = lowered.index("path")
    others = [i for i in range(len(header)) if i != at_path]
    if len(others) != len(CLASSES):
        raise PredictionsRefused(f"expected `path` and {len(CLASSES)} class columns, found {len(others)} other "
                                 f"column(s): {[header[i] for i in others]}")
    codes = {}
    for i in others:
        try:
            codes[i] = parse_label(header[i])
        except UnknownLabel:
            codes[i] = None
    named = [i for i in others if codes[i] is not None]
    if not named:  # no column names a class: AffectNet's order
        return at_path, others, "affectnet order"
    if len(named) != len(others) or len(set(codes.values())) != len(CLASSES):
        unnamed = [header[i] for i in others if codes[i] is None]
        twice = sorted({CLASSES[c] for c in codes.values() if c is not None
                        and list(codes.values()).count(c) > 1})
        raise PredictionsRefused(
            "class columns must all be named by a class (one each) or none be (then AffectNet's order is read: "
            f"{', '.join(CLASSES)}); " + (f"not a class: {unnamed}" if unnamed else f"named twice: {twice}"))
    by_code = {codes[i]: i for i in others}
    return at_path, [by_code[c] for c in range(len(CLASSES))], "named"


def _row_name(n, path):
    return f"row {n} (path {path!r})"


def read_predictions(path, known):
    """Predictions of the file at `path` for the dataset whose images are `known` ({path: image id}).
    Raises PredictionsRefused naming the first bad row."""
    header, rows = _table(path)
    at_path, at_class, columns = class_columns(header)
    if not rows:
        raise PredictionsRefused(f"{Path(path).name} has a header but no rows")
    paths, ids, values, seen = [], [], np.empty((len(rows), len(CLASSES))), {}
    for n, row in enumerate(rows, start=1):  # row 1 is the first after the header
        if len(row) != len(header):
            raise PredictionsRefused(f"row {n}: {len(row)} fields, the header has {len(header)}")
        p = str(row[at_path] if row[at_path] is not None else "").strip()
        if p not in known:
            raise PredictionsRefused(f"{_row_name(n, p)}: no image of the dataset has this path (paths are as "
                                     f"imported, relative to the dataset's root)")
        if p in seen:
            raise PredictionsRefused(f"{_row_name(n, p)}: the same path is already row {seen[p]}")
        seen[p] = n
        for k, column in enumerate(at_class):
            raw = row[column]
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise PredictionsRefused(f"{_row_name(n, p)}: {header[column]} is {raw!r}, not a number") from None
            if not math.isfinite(value):
                raise PredictionsRefused(f"{_row_name(n, p)}: {header[column]} is {raw!r}; every value must be a "
                                         f"finite number (no NaN or infinity)")
            values[n - 1, k] = value
        paths.append(p)
        ids.append(known[p])
    softmaxed = bool((values < 0).any() or (values > 1).any())
    if softmaxed:  # logits: any value outside [0, 1] says these are no probabilities
        shifted = np.exp(values - values.max(1, keepdims=True))
        probs = shifted / shifted.sum(1, keepdims=True)
    else:
        sums = values.sum(1)
        bad = np.flatnonzero(np.abs(sums - 1) > SUM_TOLERANCE)
        if len(bad):
            n = int(bad[0])
            raise PredictionsRefused(
                f"{_row_name(n + 1, paths[n])}: the probabilities sum to {sums[n]:.4f}, not 1 within "
                f"{SUM_TOLERANCE} (a file with any value outside 0-1 is read as logits and softmaxed)")
        # Rows off by CSV rounding are renormalised; rows that already sum to 1 to float precision are kept as
        # given, so that a model's own float32 probabilities come back bit for bit (and near-tied ranks stay put).
        off = np.abs(sums - 1) > EXACT_SUM
        probs = np.where(off[:, None], values / sums[:, None], values)
    return Predictions(paths=paths, image_ids=np.array(ids, dtype=np.int64), probs=probs, softmaxed=softmaxed,
                       columns=columns, sha256=file_sha256(path))


def read_embeddings(path, paths):
    """float32 (len(paths), D) embeddings of the file at `path` in the order of `paths` (the predictions' rows).
    Raises PredictionsRefused naming the first bad row."""
    name, suffix = Path(path).name, Path(path).suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise PredictionsRefused(f"{name} is not a readable .npy array: {exc}") from None
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise PredictionsRefused(f"{name}: embeddings must be a 2-D numeric array (rows x dimensions), not "
                                     f"{array.dtype} of shape {array.shape}")
        if array.shape[0] != len(paths):
            raise PredictionsRefused(f"{name} has {array.shape[0]} rows; the predictions have {len(paths)} (a .npy "
                                     f"holds one row per predictions row, in their order)")
        out = np.asarray(array, dtype=np.float32)
        order_name = lambda n: _row_name(n + 1, paths[n])  # noqa: E731
    elif suffix == ".parquet":
        out, order_name = _parquet_embeddings(path, paths)
    else:
        raise PredictionsRefused(f"{name}: embeddings are {' or '.join(EMBEDDING_SUFFIXES)}, not "
                                 f"{suffix or 'a file without a suffix'}")
    if out.shape[1] < 1:
        raise PredictionsRefused(f"{name}: embeddings have no dimensions")
    finite = np.isfinite(out).all(1)
    if not finite.all():
        raise PredictionsRefused(f"{name}: {order_name(int(np.flatnonzero(~finite)[0]))}: the embedding holds NaN "
                                 f"or infinity")
    zero = np.abs(out).sum(1) == 0
    if zero.any():
        raise PredictionsRefused(f"{name}: {order_name(int(np.flatnonzero(zero)[0]))}: the embedding is all zeros "
                                 f"(it has no direction for cosine neighbours)")
    return out


def _parquet_embeddings(path, paths):
    name = Path(path).name
    table = _parquet(path)
    header = [str(n).strip() for n in table.column_names]
    if [h.lower() for h in header].count("path") != 1:
        raise PredictionsRefused(f"{name}: Parquet embeddings need exactly one `path` column, found {header}")
    at_path = [h.lower() for h in header].index("path")
    keys = [str(p).strip() if p is not None else "" for p in table.column(at_path).to_pylist()]
    rest = [i for i in range(len(header)) if i != at_path]
    if len(rest) == 1:  # one list column: a vector per row
        vectors = table.column(rest[0]).to_pylist()
    else:
        columns = [table.column(i).to_pylist() for i in rest]
        vectors = [list(v) for v in zip(*columns)] if columns else [[] for _ in keys]
    wanted = {p: n for n, p in enumerate(paths)}
    rows, seen = [None] * len(paths), {}
    for n, (key, vector) in enumerate(zip(keys, vectors), start=1):
        if key not in wanted:
            raise PredictionsRefused(f"{name}: {_row_name(n, key)}: no predictions row has this path")
        if key in seen:
            raise PredictionsRefused(f"{name}: {_row_name(n, key)}: the same path is already row {seen[key]}")
        seen[key] = n
        try:
            rows[wanted[key]] = np.asarray(vector, dtype=np.float32).ravel()
        except (TypeError, ValueError):
            raise PredictionsRefused(f"{name}: {_row_name(n, key)}: the embedding is not numbers") from None
    missing = [p for p, r in zip(paths, rows) if r is None]
    if missing:
        raise PredictionsRefused(f"{name}: no embedding for {len(missing)} predicted path(s), the first "
                                 f"{missing[0]!r}")
    sizes = {len(r) for r in rows}
    if len(sizes) != 1:
        first = next(n for n, r in enumerate(rows) if len(r) != len(rows[0]))
        raise PredictionsRefused(f"{name}: {_row_name(seen[paths[first]], paths[first])}: {len(rows[first])} "
                                 f"dimensions, the first row has {len(rows[0])}")
    return np.stack(rows), lambda n: _row_name(seen[paths[n]], paths[n])
