"""Writes about datasets and images. A label changes only here, with its audit row in the same transaction (and the
label_changed signal, curation/signals.py, whose receivers refresh the stored panel figures in it too)."""
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from curation.models import Image, LabelChange
from curation.signals import label_changed
from training.labels import NUM_CLASSES


def image_last_change(image_id):
    """The image's latest LabelChange (with its user), or None: who moved it to its current version, and when."""
    return LabelChange.objects.filter(image_id=image_id).select_related("user").order_by("-id").first()


class VersionConflict(Exception):
    """The image changed since the caller read it (another reviewer decided first, or the caller in another tab).

    `last_change` (the image's latest LabelChange) says who changed it and when: `changed_by` (a user, or None for
    a command) and `changed_at`. str() names the user; message_for(user) says "you" where it was that user."""

    changed_by = changed_at = None

    def __init__(self, image_id, expected, actual, *, last_change=None):
        self.image_id, self.expected, self.actual = image_id, expected, actual
        if last_change is not None:
            self.changed_by, self.changed_at = last_change.user, last_change.created_at
        super().__init__(self.message_for(None))

    def change_words(self, user=None):
        """'bob changed it at 14:05', 'you changed it at 14:05', or 'someone else changed it first' when unknown."""
        if self.changed_at is None:
            return "someone else changed it first"
        at = timezone.localtime(self.changed_at).strftime("%H:%M")
        if self.changed_by is None:
            return f"a command (no signed-in user) changed it at {at}"
        if user is not None and self.changed_by.pk == user.pk:
            return f"you changed it at {at}"
        return f"{self.changed_by.get_username()} changed it at {at}"

    def message_for(self, user):
        """The conflict in words for `user` (the one whose change was refused)."""
        return f"image {self.image_id} is at version {self.actual}, not {self.expected}: {self.change_words(user)}"


class UndoConflict(VersionConflict):
    """The decision to undo is no longer the one that stands on its image: someone changed the image after it."""

    def __init__(self, image_id, actual, *, last_change=None):
        super().__init__(image_id, None, actual, last_change=last_change)

    def message_for(self, user):
        return (f"image {self.image_id} was changed after your decision ({self.change_words(user)}; now at version "
                f"{self.actual}); nothing was undone")


_NEW_STATUS = {
    LabelChange.Action.CONFIRM: Image.Status.CONFIRMED,
    LabelChange.Action.RELABEL: Image.Status.RELABELLED,
    LabelChange.Action.EXCLUDE: Image.Status.EXCLUDED,
}


def image_decisions_standing(image_id, *, before_id=None):
    """The image's decisions that still stand, oldest first: every undo takes back the latest one."""
    changes = LabelChange.objects.filter(image_id=image_id).order_by("id")
    if before_id is not None:
        changes = changes.filter(id__lt=before_id)
    stack = []
    for change in changes.only("id", "action", "user_id", "created_at", "new_label", "new_status"):
        if change.action == LabelChange.Action.UNDO:
            if stack:
                stack.pop()
        else:
            stack.append(change)
    return stack


def image_label_change(*, image_id, action, expected_version, user=None, label=None, note="", seconds_spent=None,
                       undo_of=None):
    """Confirm, relabel, exclude or undo one image if it is still at `expected_version`; returns the LabelChange.

    Conditional update on the version, so two reviewers deciding the same image at once cannot both win, on
    databases with or without row locks. The same UPDATE records who decided and when on the image (what the
    export shows) and releases any review claim on it. Undo (action "undo", `undo_of` the LabelChange to take
    back) restores that change's old label and status and the reviewer of the decision before it; it raises
    UndoConflict when `undo_of` is not the decision that stands on the image. Raises VersionConflict, or
    ValueError for a bad action or label.
    """
    action = LabelChange.Action(action)
    now = timezone.now()
    with transaction.atomic():
        image = Image.objects.get(pk=image_id)
        reviewed_by_id, reviewed_at = (user.pk if user is not None else None), now
        if action == LabelChange.Action.UNDO:
            if undo_of is None or undo_of.image_id != image.pk or undo_of.action == LabelChange.Action.UNDO:
                raise ValueError("undo needs the decision on this image to take back (undo_of)")
            standing = image_decisions_standing(image.pk)
            if not standing or standing[-1].pk != undo_of.pk:
                raise UndoConflict(image.pk, image.version, last_change=image_last_change(image.pk))
            new_label, new_status = undo_of.old_label, undo_of.old_status
            before = standing[-2] if len(standing) > 1 else None
            if new_status == Image.Status.UNREVIEWED or before is None:
                reviewed_by_id, reviewed_at = None, None
            else:
                reviewed_by_id, reviewed_at = before.user_id, before.created_at
        elif action == LabelChange.Action.RELABEL:
            if label is None or not 0 <= int(label) < NUM_CLASSES:
                raise ValueError(f"relabel needs a label code 0-{NUM_CLASSES - 1}, got {label!r}")
            new_label = int(label)
            new_status = Image.Status.RELABELLED if new_label != image.original_label else Image.Status.CONFIRMED
        elif action == LabelChange.Action.CONFIRM:
            # Confirming an earlier relabel agrees with it: the label still differs from the original.
            new_label = image.label
            new_status = Image.Status.RELABELLED if new_label != image.original_label else Image.Status.CONFIRMED
        else:
            new_label, new_status = image.label, _NEW_STATUS[action]
        updated = Image.objects.filter(pk=image_id, version=expected_version).update(
            label=new_label, status=new_status, version=F("version") + 1,
            reviewed_by_id=reviewed_by_id, reviewed_at=reviewed_at, claimed_by=None, claim_expires_at=None,
        )
        if not updated:
            raise VersionConflict(image_id, expected_version,
                                  Image.objects.values_list("version", flat=True).get(pk=image_id),
                                  last_change=image_last_change(image_id))
        change = LabelChange.objects.create(
            image_id=image_id, old_label=image.label, new_label=new_label, old_status=image.status,
            new_status=new_status, action=action, user=user, note=note, seconds_spent=seconds_spent,
            audit=image.audit,  # an audit decision: the queue served this image as a random audit card
        )
        # The stored panel figures (curation/models.py DatasetPanels) move in this same transaction.
        label_changed.send(sender=Image, image=image, change=change)
        return change
