import pytest

from curation.models import Image, LabelChange
from curation.services import VersionConflict, image_label_change
from tests.factories import ImageFactory


@pytest.mark.django_db
def test_relabel_changes_label_and_writes_the_audit_row(user):
    image = ImageFactory(label=1, original_label=1)
    change = image_label_change(image_id=image.pk, action="relabel", label=7, expected_version=1, user=user, note="smirk")
    image.refresh_from_db()
    assert (image.label, image.original_label, image.status, image.version) == (7, 1, "relabelled", 2)
    assert (change.old_label, change.new_label, change.action, change.user, change.note) == (1, 7, "relabel", user, "smirk")


@pytest.mark.django_db
def test_a_stale_version_is_refused_and_nothing_is_written(user):
    image = ImageFactory(label=2, original_label=2)
    image_label_change(image_id=image.pk, action="exclude", expected_version=1, user=user)
    with pytest.raises(VersionConflict, match="version 2, not 1"):
        image_label_change(image_id=image.pk, action="relabel", label=0, expected_version=1, user=user)
    image.refresh_from_db()
    assert (image.label, image.status, image.version) == (2, Image.Status.EXCLUDED, 2)
    assert LabelChange.objects.count() == 1


@pytest.mark.django_db
def test_audit_rows_cannot_be_edited_or_deleted(user):
    image = ImageFactory()
    change = image_label_change(image_id=image.pk, action="confirm", expected_version=1, user=user)
    change.note = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        change.save()
    with pytest.raises(RuntimeError, match="append-only"):
        change.delete()


@pytest.mark.django_db
def test_bad_relabel_is_refused(user):
    image = ImageFactory()
    with pytest.raises(ValueError, match="label code 0-7"):
        image_label_change(image_id=image.pk, action="relabel", label=9, expected_version=1, user=user)
    assert Image.objects.get(pk=image.pk).version == 1
