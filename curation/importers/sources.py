"""Scanners: turn a dataset on disk into candidates (path, label, split, where the bytes are) and problems.

One function per format, each a plain generator over the source in a stable (sorted) order, so a re-run of an
interrupted import sees the same sequence. No Django.
"""
import csv
import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image as PILImage

from curation.importers.validate import BadFile, safe_join
from training.labels import (
    AFFECTNET_NOT_EMOTION,
    UnknownLabel,
    affectnet_code,
    fer2013_code,
    parse_label,
)

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


class ImportSourceError(ValueError):
    """The source as a whole is not what the format expects (wrong layout, missing columns)."""


@dataclass
class Candidate:
    path: str  # relative POSIX path, as the dataset owner knows the file
    label: int
    split: str | None  # None: carve it
    source: Path | None = None
    data: bytes | None = None


@dataclass
class Problem:
    path: str
    reason: str
    detail: str


@dataclass
class Skip:
    path: str
    reason: str  # e.g. affectnet 'uncertain'


@dataclass
class Notice:
    """Something the import did that was not asked for (a manifest read as Latin-1): the job's warning."""
    key: str
    value: str
    message: str


# --- CSV files: any encoding a spreadsheet writes, one bad row at a time --------------------------------------------
CHUNK_BYTES = 1 << 20


def text_encoding(path):
    """How to read a CSV file: ("utf-8-sig", None) when it is UTF-8 (a byte-order mark or not), else ("latin-1",
    the offset of its first byte that is not UTF-8): every byte is a Latin-1 character, so such a file always
    reads, and a spreadsheet's "CSV (Windows)" (cp1252/Latin-1) reads right. A file with a NUL byte is not a text
    CSV (UTF-16, or not text at all): ImportSourceError, one line naming the file and the byte."""
    path = Path(path)
    offset, carry, bad = 0, b"", None
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise ImportSourceError(f"{path.name} is not a text file (byte {offset + nul} is NUL): save it as "
                                        f"CSV in UTF-8 (or Latin-1)")
            if bad is None:
                data, start = carry + chunk, offset - len(carry)
                try:
                    data.decode("utf-8")
                    carry = b""
                except UnicodeDecodeError as exc:
                    if chunk and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                        carry = data[exc.start:]  # a character cut by the chunk's end: decided with the next
                    else:
                        bad = (start + exc.start, data[exc.start])
            if not chunk:
                break
            offset += len(chunk)
    if bad is None:
        return "utf-8-sig", None
    return "latin-1", bad


@contextmanager
def open_csv(path):
    """(the open text file, a Notice or None) for a CSV file in UTF-8 or, failing that, Latin-1."""
    path = Path(path)
    encoding, bad = text_encoding(path)
    notice = None
    if bad is not None:
        notice = Notice("manifest_encoding", "latin-1",
                        f"{path.name} is not UTF-8 (byte {bad[0]} is 0x{bad[1]:02x}): read as Latin-1; if names "
                        f"came out wrong, save it as CSV UTF-8 and import again")
    with open(path, newline="", encoding=encoding) as fh:
        yield fh, notice


def csv_rows(reader, name):
    """(line number, row, None) per row of a csv.DictReader, or (line, None, why) for a row the csv module
    refuses (a field over its size limit): a bad row, not a failed import."""
    while True:
        line = reader.line_num + 1  # where the row starts (the csv module counts a refused line late)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, None, f"{name} line {line}: {exc}"
            continue
        yield line, row, None


def csv_fieldnames(reader, name):
    try:
        return reader.fieldnames or []
    except csv.Error as exc:
        raise ImportSourceError(f"{name} line 1 (the header): {exc}") from None


def _rel(root, path):
    return PurePosixPath(os.path.relpath(path, root)).as_posix()


def scan_affectnet(root):
    root = Path(root)
    parts = [(sub, split) for sub, split in (("train_set", "train"), ("val_set", "test")) if (root / sub).is_dir()]
    if not parts:
        raise ImportSourceError(f"{root} has neither train_set/ nor val_set/: not the AffectNet layout")
    for sub, split in parts:
        images_dir, ann_dir = root / sub / "images", root / sub / "annotations"
        if not images_dir.is_dir():
            raise ImportSourceError(f"{root / sub} has no images/ folder")
        image_ids = set()
        for entry in sorted(images_dir.iterdir()):
            rel = _rel(root, entry)
            image_ids.add(entry.stem)
            try:
                safe_join(root, rel)
            except BadFile as exc:
                yield Problem(rel, exc.reason, exc.detail)
                continue
            ann = ann_dir / f"{entry.stem}_exp.npy"
            if not ann.is_file():
                yield Problem(rel, "missing_annotation", f"no annotation {_rel(root, ann)}")
                continue
            try:
                value = np.load(ann, allow_pickle=False)
                code = affectnet_code(value.flat[0] if value.size else "")
            except UnknownLabel as exc:
                yield Problem(rel, "unknown_label", str(exc))
                continue
            except (ValueError, OSError, EOFError) as exc:
                yield Problem(rel, "bad_annotation", f"cannot read {_rel(root, ann)}: {exc}")
                continue
            if code is None:
                yield Skip(rel, AFFECTNET_NOT_EMOTION[int(float(value.flat[0]))])
                continue
            yield Candidate(rel, code, split, source=entry)
        if ann_dir.is_dir():
            for ann in sorted(ann_dir.glob("*_exp.npy")):
                if ann.name[: -len("_exp.npy")] not in image_ids:
                    yield Problem(_rel(root, ann), "missing_image", "annotation without an image")


def scan_fer2013(path):
    path = Path(path)
    if path.is_dir():
        path = path / "fer2013.csv"
    if not path.is_file():
        raise ImportSourceError(f"{path} does not exist: give the FER2013 CSV or a folder holding fer2013.csv")
    with open_csv(path) as (fh, notice):
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(csv_fieldnames(reader, path.name))
        if missing:
            raise ImportSourceError(f"{path.name} lacks column(s) {', '.join(sorted(missing))}; expected emotion,pixels,Usage")
        if notice:
            yield notice
        number = 0
        for line, row, why in csv_rows(reader, path.name):
            number += 1
            rel = f"fer2013/{number:06d}.png"
            if why:
                yield Problem(rel, "bad_csv_row", why)
                continue
            try:
                label = fer2013_code(row["emotion"])
            except UnknownLabel as exc:
                yield Problem(rel, "unknown_label", f"row {number}: {exc}")
                continue
            usage = (row.get("Usage") or "").strip()
            split = FER2013_USAGE.get(usage) if usage else None
            if usage and split is None:
                yield Problem(rel, "unknown_split", f"row {number}: Usage {usage!r} is not Training, PublicTest or PrivateTest")
                continue
            try:
                pixels = np.array((row["pixels"] or "").split(), dtype=np.int64)
                if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                    raise ValueError(f"expected 2304 values in 0-255, got {pixels.size}")
            except ValueError as exc:
                yield Problem(rel, "corrupt", f"row {number}: bad pixels: {exc}")
                continue
            buf = io.BytesIO()
            PILImage.fromarray(pixels.astype(np.uint8).reshape(48, 48), mode="L").save(buf, format="PNG")
            yield Candidate(rel, label, split, data=buf.getvalue())


def _label_or_problem(rel, name):
    try:
        return parse_label(name), None
    except UnknownLabel as exc:
        return None, Problem(rel, "unknown_label", str(exc))


def scan_imagefolder(root):
    root = Path(root)
    if not root.is_dir():
        raise ImportSourceError(f"{root} is not a folder")
    top = [p for p in sorted(root.iterdir()) if p.is_dir()]
    by_split = bool(top) and all(p.name.lower() in SPLIT_NAMES for p in top)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                yield Problem(_rel(root, here / name), "unsafe_path", "symlinked folder is not followed")
        for name in sorted(filenames):
            entry = here / name
            rel = _rel(root, entry)
            parts = PurePosixPath(rel).parts
            want = 3 if by_split else 2
            if len(parts) != want:
                layout = "ROOT/<split>/<label>/<file>" if by_split else "ROOT/<label>/<file>"
                yield Problem(rel, "unexpected_location", f"file is not at {layout}")
                continue
            try:
                safe_join(root, rel)
            except BadFile as exc:
                yield Problem(rel, exc.reason, exc.detail)
                continue
            label, problem = _label_or_problem(rel, parts[-2])
            if problem:
                yield problem
                continue
            split = SPLIT_NAMES[parts[0].lower()] if by_split else None
            yield Candidate(rel, label, split, source=entry)


def scan_csv(manifest):
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ImportSourceError(f"{manifest} is not a file: give the CSV manifest (path,label[,split])")
    root = manifest.parent
    with open_csv(manifest) as (fh, notice):
        reader = csv.DictReader(fh)
        missing = {"path", "label"} - set(csv_fieldnames(reader, manifest.name))
        if missing:
            raise ImportSourceError(f"{manifest.name} lacks column(s) {', '.join(sorted(missing))}; expected path,label[,split]")
        rows = []
        number = 1
        for line, row, why in csv_rows(reader, manifest.name):
            number += 1
            if why:
                yield Problem(f"<line {line}>", "bad_csv_row", why)
                continue
            rows.append((number, row))
    if notice:
        yield notice
    for number, row in sorted(rows, key=lambda r: (r[1]["path"] or "")):
        rel = (row["path"] or "").strip().replace("\\", "/")  # manifests written on Windows
        if not rel:
            yield Problem(f"<line {number}>", "missing_file", f"line {number} has an empty path")
            continue
        try:
            source = safe_join(root, rel)
        except BadFile as exc:
            yield Problem(rel, exc.reason, exc.detail)
            continue
        label, problem = _label_or_problem(rel, row["label"] or "")
        if problem:
            yield problem
            continue
        split_value = (row.get("split") or "").strip().lower()
        split = SPLIT_NAMES.get(split_value) if split_value else None
        if split_value and split is None:
            yield Problem(rel, "unknown_split", f"split {row['split']!r} is not train, val or test")
            continue
        yield Candidate(PurePosixPath(os.path.normpath(rel)).as_posix(), label, split, source=source)


SCANNERS = {"affectnet": scan_affectnet, "fer2013": scan_fer2013, "imagefolder": scan_imagefolder, "csv": scan_csv}
