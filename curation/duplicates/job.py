"""The find_duplicates job: hash every image of a dataset, link the near-duplicate pairs (detect.py), and store the
groups as DuplicateMember rows, replacing the dataset's previous ones in one transaction. Its result counts the
groups within and across splits and the train/test and val/test leaks (leaks.py)."""
from pathlib import Path

from django.conf import settings
from django.db import transaction
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from curation.duplicates import detect
from curation.duplicates.leaks import dataset_leaks
from curation.jobs.errors import JobParamsError
from curation.models import DuplicateMember, Image
from curation.selectors import dataset_resolve


def _number(params, key, default, low, high, kind):
    value = params.get(key)
    value = default if value is None else value
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or (kind is int and number != value) or not low <= number <= high:
        raise JobParamsError(f"{key} must be a {'whole ' if kind is int else ''}number in [{low}, {high}], "
                             f"not {value!r}")
    return number


def validate_duplicates_params(params):
    dataset = dataset_resolve(name=params.get("dataset"))
    if not Image.objects.filter(dataset=dataset).exists():
        raise JobParamsError(f"dataset {dataset.name!r} has no images to look for duplicates in")
    return {
        "dataset": dataset.name,
        "max_hash_distance": _number(params, "max_hash_distance", detect.MAX_HASH_DISTANCE, 0, detect.HASH_BITS, int),
        "max_colour_distance": _number(params, "max_colour_distance", detect.MAX_COLOUR_DISTANCE, 0.0, 2.0, float),
    }


def find_duplicates_job(ctx):
    p = ctx.params
    dataset = dataset_resolve(name=p["dataset"])
    rows = list(Image.objects.filter(dataset=dataset).order_by("id").values_list("id", "file"))
    ids, described, unreadable = [], [], []
    media = Path(settings.MEDIA_ROOT)
    for index, (pk, file) in enumerate(rows):
        try:
            with PILImage.open(media / file) as image:
                described.append(detect.image_and_variant_features(image))
        except (OSError, UnidentifiedImageError):
            unreadable.append(pk)
            continue
        ids.append(pk)
        ctx.progress(0.8 * (index + 1) / len(rows), f"hashed {index + 1:,} of {len(rows):,} images")
    features = detect.features_from(described)
    limits = {"phash": p["max_hash_distance"], "colour": p["max_colour_distance"]}
    pairs = detect.near_pairs(features, limits,
                              progress=lambda f: ctx.progress(0.8 + 0.15 * f, "comparing hashes"))
    nearest = {}  # image -> (hash distance, how) of its nearest fellow member
    for i, j, distance, how in pairs:
        for x in (i, j):
            if x not in nearest or distance < nearest[x][0]:
                nearest[x] = (distance, how)
    signals = "+".join(detect.SIGNALS)
    members = []
    for group in detect.groups_of(len(ids), pairs):
        name = ids[group[0]]
        members += [DuplicateMember(dataset=dataset, image_id=ids[x], group=name, job_id=ctx.job_id,
                                    distance=nearest[x][0],
                                    linked_by=f"{signals} of {nearest[x][1]}" if nearest[x][1] else signals)
                    for x in group]
    ctx.progress(0.95, "storing groups", force=True)
    with transaction.atomic():
        DuplicateMember.objects.filter(dataset=dataset).delete()
        DuplicateMember.objects.bulk_create(members, batch_size=2000)
    report = dataset_leaks(dataset)
    result = {
        "dataset": dataset.name, "images": len(rows), "unreadable": unreadable[:50], "unreadable_count": len(unreadable),
        "pairs": len(pairs), "groups": report["groups"], "grouped_images": report["images"],
        "within": {row["split"]: row["groups"] for row in report["within"]},
        "across": {row["splits"]: row["groups"] for row in report["across"]},
        "leaks": {row["splits"]: {"groups": row["groups"], "test_images": row["test_images"],
                                  "excluded": row["excluded"]} for row in report["leaks"]},
        "leaked_test_images": report["leaked_test_images"], "limits": limits,
    }
    if unreadable:
        result["warning"] = (f"{len(unreadable)} image file(s) could not be read and were left out, e.g. image "
                             f"{unreadable[0]}")
    return result
