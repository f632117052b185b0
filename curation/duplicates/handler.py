"""The find_duplicates job: describe every image of a dataset in batches (its memory is the features, about 1.4 KB an
image, never the images), link the near-duplicate pairs from the candidate index (detect.py), read the linked images
again to align each pair and keep those that match (align.py), and store the
groups as DuplicateMember rows, replacing the dataset's previous ones in one transaction with the stored leak report
the pages read (leaks_refresh; a cancel before it leaves the previous groups as they were). Its result counts the
groups within and across splits and the train/test and val/test leaks (leaks.py)."""
import time
from pathlib import Path

import numpy as np

from django.conf import settings
from django.db import transaction
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from curation.duplicates import align, detect
from curation.duplicates.leaks import leaks_refresh
from curation.models import DuplicateMember, Image
from curation.selectors import dataset_resolve
from training.malloc import release_heap


BATCH = 512  # images read and described at once
# Threads reading the files: one. Pillow holds the GIL for much of opening a PNG, and two threads read 30,000 faces
# slower than one (20.3 s against 16.2 s, docs/benchmarks.md).
READERS = 1
# What opening a file that is not a readable image raises: the image is skipped and counted, never fatal.
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, SyntaxError, PILImage.DecompressionBombError)


class _Store:
    """The features of n images, filled batch by batch: the images' thumbnails as float16 (half the memory of
    float32; the colour distance is computed in float32) and their crops' as int8 (detect.Int8Thumbs), so the job
    holds about 1.4 KB an image, never the images."""

    def __init__(self, n):
        self.ids = np.zeros(n, np.int64)
        self.features = detect.Features(np.zeros(n, np.uint64), np.zeros((n, detect.DIM), np.float16),
                                        np.zeros((n, len(detect.VARIANTS)), np.uint64),
                                        detect.Int8Thumbs(n, len(detect.CROPS)))
        self.filled = 0

    def add(self, ids, parts):
        f, k, end = detect.describe_thumbnails(parts), self.filled, self.filled + len(parts)
        self.ids[k:end] = ids
        self.features.hashes[k:end], self.features.thumbs[k:end] = f.hashes, f.thumbs
        self.features.variant_hashes[k:end] = f.variant_hashes
        self.features.variant_thumbs.store(slice(k, end), f.variant_thumbs)
        self.filled = end

    def done(self):
        k, f = self.filled, self.features
        return self.ids[:k], detect.Features(f.hashes[:k], f.thumbs[:k], f.variant_hashes[:k],
                                             f.variant_thumbs.head(k))


def _read(media, rows, read):
    """[(pk, read(image))] of the (pk, file) rows whose files open as images, and the pks of those that do not."""
    out, bad = [], []
    for pk, file in rows:
        try:
            with PILImage.open(media / file) as image:
                out.append((pk, read(image)))
        except UNREADABLE:
            bad.append(pk)
    return out, bad


def _pictures(ids, pairs, media):
    """{index: align.grey_thumbnail} of the images in pairs, read again from their files (only the linked images, a
    fraction of the set, are held); an image that can no longer be read is left out (its pairs are dropped)."""
    needed = sorted({x for pair in pairs for x in pair[:2]})
    index_of = {ids[x]: x for x in needed}

    def rows():  # in the caller's thread: the database is read there
        for start in range(0, len(needed), 2000):
            chunk = [ids[x] for x in needed[start : start + 2000]]
            yield from Image.objects.filter(id__in=chunk).values_list("id", "file")

    pictures = {}
    for read, _ in detect.ordered_map(lambda chunk: _read(media, chunk, align.grey_thumbnail),
                                      detect.chunks(rows(), BATCH), READERS):
        pictures |= {index_of[pk]: picture for pk, picture in read}
    return pictures


def find_duplicates_job(ctx):
    p = ctx.params
    dataset = dataset_resolve(name=p["dataset"])
    images = Image.objects.filter(dataset=dataset).order_by("id")
    total = images.count()
    started = time.monotonic()
    store, unreadable, unreadable_count, seen = _Store(total), [], 0, 0
    media = Path(settings.MEDIA_ROOT)
    # Streamed: the rows from a server-side cursor, the files read BATCH at a time on a thread of their own while
    # this one describes the batch before; images added meanwhile wait for the next run.
    rows = images[:total].values_list("id", "file").iterator(chunk_size=2000)
    for read, bad in detect.ordered_map(lambda chunk: _read(media, chunk, detect.thumbnails),
                                        detect.chunks(rows, BATCH), READERS):
        if read:
            store.add([pk for pk, _ in read], [parts for _, parts in read])
        unreadable_count += len(bad)
        unreadable += bad[: 50 - len(unreadable)]
        seen += len(read) + len(bad)
        ctx.progress(0.7 * seen / max(total, 1), f"hashed {seen:,} of {total:,} images")
    ids, features = store.done()
    # The heap the batches freed given back before the search, the search's before the alignment, so that each
    # stage's peak does not sit on top of the last (at 30,000 faces the peak fell from 0.27 to 0.24 of the cache).
    release_heap()
    seconds = {"describe": time.monotonic() - started}
    limits = {"phash": p["max_hash_distance"], "colour": p["max_colour_distance"]}
    pairs = detect.near_pairs(features, limits,
                              progress=lambda f: ctx.progress(0.7 + 0.2 * f, "comparing candidate pairs"))
    ids = ids.tolist()
    del store, features
    release_heap()
    seconds["candidates"] = time.monotonic() - started - sum(seconds.values())
    ctx.progress(0.9, f"aligning {len(pairs):,} linked pairs", force=True)
    pairs, dropped = align.confirmed(pairs, _pictures(ids, pairs, media), detect.CROP_SCALE,
                                     p["max_residual"],
                                     progress=lambda f: ctx.progress(0.9 + 0.05 * f, "aligning linked pairs"))
    seconds["aligned"] = time.monotonic() - started - sum(seconds.values())
    groups = detect.groups_of(len(ids), pairs)
    nearest = detect.nearest_in_groups(groups, pairs)
    signals = "+".join([*detect.SIGNALS, "aligned"])
    members = []
    for group in groups:
        name = ids[group[0]]
        members += [DuplicateMember(dataset=dataset, image_id=ids[x], group=name, job_id=ctx.job_id,
                                    distance=nearest[x][0],
                                    linked_by=f"{signals} of {nearest[x][1]}" if nearest[x][1] else signals)
                    for x in group]
    ctx.progress(0.95, "storing groups", force=True)
    with transaction.atomic():
        DuplicateMember.objects.filter(dataset=dataset).delete()
        DuplicateMember.objects.bulk_create(members, batch_size=2000)
        report = leaks_refresh(dataset)  # the pages' stored report, with the groups it describes
    result = {
        "dataset": dataset.name, "images": total, "unreadable": unreadable, "unreadable_count": unreadable_count,
        "pairs": len(pairs), "pairs_dropped_when_aligned": dropped, "groups": report["groups"], "grouped_images": report["images"],
        "within": {row["split"]: row["groups"] for row in report["within"]},
        "across": {row["splits"]: row["groups"] for row in report["across"]},
        "leaks": {row["splits"]: {"groups": row["groups"], "test_images": row["test_images"],
                                  "excluded": row["excluded"]} for row in report["leaks"]},
        "leaked_test_images": report["leaked_test_images"],
        "limits": limits | {"aligned_residual": p["max_residual"]},
        "seconds": {stage: round(t, 1) for stage, t in seconds.items()},
    }
    if unreadable:
        result["warning"] = (f"{unreadable_count} image file(s) could not be read and were left out, e.g. image "
                             f"{unreadable[0]}")
    return result
