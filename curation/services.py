"""Writes about datasets and images. A label changes only here, with its audit row in the same transaction."""
from django.db import transaction
from django.db.models import F

from curation.labels import NUM_CLASSES
from curation.models import Image, LabelChange


class VersionConflict(Exception):
    """The image changed since the caller read it (another reviewer decided first)."""

    def __init__(self, image_id, expected, actual):
        super().__init__(f"image {image_id} is at version {actual}, not {expected}: someone else changed it first")
        self.image_id, self.expected, self.actual = image_id, expected, actual


_NEW_STATUS = {
    LabelChange.Action.CONFIRM: Image.Status.CONFIRMED,
    LabelChange.Action.RELABEL: Image.Status.RELABELLED,
    LabelChange.Action.EXCLUDE: Image.Status.EXCLUDED,
}


def image_label_change(*, image_id, action, expected_version, user=None, label=None, note=""):
    """Confirm, relabel or exclude one image if it is still at `expected_version`; returns the LabelChange.

    Conditional update on the version, so two reviewers deciding the same image at once cannot both win, on
    databases with or without row locks. Raises VersionConflict, or ValueError for a bad action or label.
    """
    action = LabelChange.Action(action)
    if action not in _NEW_STATUS:
        raise ValueError(f"action must be one of {', '.join(_NEW_STATUS)}, not {action!r}")
    with transaction.atomic():
        image = Image.objects.get(pk=image_id)
        if action == LabelChange.Action.RELABEL:
            if label is None or not 0 <= int(label) < NUM_CLASSES:
                raise ValueError(f"relabel needs a label code 0-{NUM_CLASSES - 1}, got {label!r}")
            new_label = int(label)
            new_status = Image.Status.RELABELLED if new_label != image.original_label else Image.Status.CONFIRMED
        else:
            new_label, new_status = image.label, _NEW_STATUS[action]
        updated = Image.objects.filter(pk=image_id, version=expected_version).update(
            label=new_label, status=new_status, version=F("version") + 1
        )
        if not updated:
            raise VersionConflict(image_id, expected_version, Image.objects.values_list("version", flat=True).get(pk=image_id))
        return LabelChange.objects.create(
            image_id=image_id, old_label=image.label, new_label=new_label, old_status=image.status,
            new_status=new_status, action=action, user=user, note=note,
        )
