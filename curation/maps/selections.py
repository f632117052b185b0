"""Stored selections: the images a user lassoed or boxed on the dataset map, kept under an id so that the grid can
show exactly them (?selection=ID) however many there are."""
from django.db import transaction

from curation.models import Image, ImageSelection

MAX_SELECTION = 200_000
MAX_ID = 2 ** 63 - 1


class SelectionRefused(ValueError):
    """A selection that cannot be stored; the message names the problem. Nothing is stored."""


def image_selection_create(*, dataset, image_ids, user=None, source=""):
    """Store `image_ids` (images of `dataset`) as one selection and return it. Refuses an empty or oversized list,
    anything but whole numbers, and any id that is not an image of the dataset (naming the first), storing nothing."""
    if not isinstance(image_ids, (list, tuple)) or not image_ids:
        raise SelectionRefused("select at least one image (ids: a non-empty list)")
    if len(image_ids) > MAX_SELECTION:
        raise SelectionRefused(f"{len(image_ids):,} images selected; at most {MAX_SELECTION:,} at a time")
    bad = next((v for v in image_ids if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_ID), None)
    if bad is not None:
        raise SelectionRefused(f"image ids are whole numbers from 1 to {MAX_ID}, not {bad!r}")
    wanted = sorted(set(image_ids))
    found = set(Image.objects.filter(dataset=dataset, pk__in=wanted).values_list("pk", flat=True))
    if len(found) != len(wanted):
        missing = next(pk for pk in wanted if pk not in found)
        raise SelectionRefused(f"image {missing} is not an image of dataset {dataset.name}"
                               + (f" ({len(wanted) - len(found)} such ids)" if len(wanted) - len(found) > 1 else ""))
    through = ImageSelection.images.through
    with transaction.atomic():
        selection = ImageSelection.objects.create(dataset=dataset, created_by=user, source=str(source)[:200])
        through.objects.bulk_create([through(imageselection_id=selection.pk, image_id=pk) for pk in wanted],
                                    batch_size=5000)
    return selection
