"""The cleaned-label CSV: rows from curation.selectors.dataset_export_rows turned into CSV text, chunk by chunk.

Cells a spreadsheet would run as a formula (starting with =, +, -, @, tab or carriage return) get a leading
apostrophe. Only free-text columns can start that way: path and reviewer name; labels, split and status are
fixed words, and scores are numbers that a reader must be able to parse as such.
"""
import csv
import io

from training.labels import CLASSES

CONTRACT_COLUMNS = ("path", "split", "original_label", "label", "status", "ambiguity", "suspicion", "reviewed_by",
                    "reviewed_at")
# cleanlab Datalab's signals on the out-of-fold embeddings (score_ambiguity), after the contract's columns, never
# among them: scores as numbers, the two issue flags as 1 / 0, the near-duplicate set as the API's image ids
# separated by spaces; all empty for an image scoring has not judged.
DATALAB_COLUMNS = ("datalab_label_quality", "datalab_label_issue", "datalab_outlier_score", "datalab_outlier",
                   "datalab_near_duplicate_score", "datalab_near_duplicate_ids")
# find_duplicates' group (the lowest image id in it, curation.duplicates), after Datalab's: empty for an image in
# none, or where the job has not run.
DUPLICATE_COLUMNS = ("duplicate_group",)
COLUMNS = CONTRACT_COLUMNS + DATALAB_COLUMNS + DUPLICATE_COLUMNS
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text):
    return "'" + text if text.startswith(_FORMULA_START) else text


def _number(value):
    return "" if value is None else repr(value)


def csv_chunks(rows, *, usernames, rows_per_chunk=1000):
    """Yield the CSV as str chunks: the header, then `rows_per_chunk` rows at a time. `rows` are the tuples of
    dataset_export_rows; `usernames` maps reviewer ids to names. Times are ISO 8601 with their UTC offset."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    names = {pk: neutralise(name) for pk, name in usernames.items()}
    batch = []
    for (path, split, original_label, label, status, ambiguity, suspicion, reviewer_id, reviewed_at, *datalab,
         duplicate_group) in rows:
        batch.append((
            neutralise(path), split, CLASSES[original_label], CLASSES[label], status, _number(ambiguity),
            _number(suspicion), names.get(reviewer_id, ""), reviewed_at.isoformat() if reviewed_at else "",
            *_datalab_cells(*datalab), "" if duplicate_group is None else str(duplicate_group),
        ))
        if len(batch) >= rows_per_chunk:
            writer.writerows(batch)
            batch.clear()
            yield _take(buffer)
    writer.writerows(batch)
    yield _take(buffer)


def _datalab_cells(label_quality, label_issue, outlier_score, outlier, duplicate_score, duplicates):
    if label_quality is None and outlier_score is None and duplicate_score is None:
        return ("",) * len(DATALAB_COLUMNS)
    return (_number(label_quality), str(int(bool(label_issue))), _number(outlier_score), str(int(bool(outlier))),
            _number(duplicate_score), " ".join(str(int(i)) for i in duplicates or ()))


def _take(buffer):
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
