"""verify_labels: replaying each image's audit trail (undos included) finds a label changed behind it."""
import io

import pytest
from django.core.management import CommandError, call_command

from curation.audit import labels_verify
from curation.models import Image
from curation.review.services import image_decide, review_undo
from tests.factories import DatasetFactory, ImageFactory, UserFactory


def decide(user, image, action, label=None):
    image.refresh_from_db()
    return image_decide(user=user, image_id=image.pk, action=action, version=image.version, label=label)


def verify(*args):
    out = io.StringIO()
    try:
        call_command("verify_labels", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.fixture
def decided(db):
    """A dataset whose images went through every kind of decision and undo, through the review services."""
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    dataset = DatasetFactory(name="faces")
    images = [ImageFactory(dataset=dataset, original_label=1, label=1) for _ in range(7)]
    decide(ann, images[0], "confirm")
    decide(ann, images[1], "relabel", 4)
    decide(ann, images[2], "exclude")
    decide(ann, images[3], "relabel", 5)
    review_undo(user=ann)  # back to unreviewed, nobody's
    decide(ann, images[4], "relabel", 6)
    decide(bob, images[4], "confirm")  # agrees with ann's relabel
    review_undo(user=bob)  # ann's relabel stands again, and ann is its reviewer
    decide(bob, images[5], "relabel", 2)
    decide(bob, images[5], "relabel", 1)  # back to the original label: confirmed
    # images[6] never decided
    return dataset, images, ann, bob


def test_a_dataset_decided_and_undone_through_the_services_verifies_clean(decided):
    _dataset, images, ann, bob = decided
    states = {i.pk: (i.label, i.status, i.reviewed_by_id, i.version) for i in Image.objects.all()}
    assert states[images[3].pk] == (1, "unreviewed", None, 3)
    assert states[images[4].pk] == (6, "relabelled", ann.pk, 4)
    assert states[images[5].pk] == (1, "confirmed", bob.pk, 3)
    out, error = verify()
    assert error is None, out
    assert "7 images and 10 label changes checked: 0 mismatches on 0 images" in out
    out, error = verify("--dataset", "faces")
    assert error is None and "7 images" in out


def test_a_label_changed_behind_the_trail_is_reported_by_image_and_field(decided):
    _dataset, images, ann, bob = decided
    other = ImageFactory(dataset=DatasetFactory(name="other"))
    Image.objects.filter(pk=images[1].pk).update(label=7)  # behind the trail
    Image.objects.filter(pk=images[4].pk).update(reviewed_by=bob)
    Image.objects.filter(pk=images[6].pk).update(status="excluded", version=5)
    Image.objects.filter(pk=other.pk).update(label=3)

    out, error = verify("--dataset", "faces")
    assert isinstance(error, CommandError) and "3 images disagree" in str(error)
    lines = out.splitlines()
    assert f"image {images[1].pk} (faces:{images[1].path}): label is 7, the audit trail says 4" in lines
    assert f"image {images[4].pk} (faces:{images[4].path}): reviewed_by is {bob.pk}, the audit trail says {ann.pk}" \
        in lines
    assert f"image {images[6].pk} (faces:{images[6].path}): status is 'excluded', the audit trail says 'unreviewed'" \
        in lines
    assert f"image {images[6].pk} (faces:{images[6].path}): version is 5, the audit trail says 1" in lines
    assert lines[-1] == "7 images and 10 label changes checked: 4 mismatches on 3 images"
    assert "(other:" not in out

    out, error = verify()  # all datasets: the other one's image too
    assert error is not None and f"image {other.pk} (other:" in out


def test_a_tampered_label_that_was_decided_again_still_shows_in_the_trail(decided):
    """After a change behind the trail, the next decision starts from a state the trail never reached: the final
    state agrees with the last row, but that row's old label gives it away."""
    dataset, images, _ann, bob = decided
    Image.objects.filter(pk=images[0].pk).update(label=3, status="relabelled")
    decide(bob, images[0], "confirm")
    report = labels_verify(dataset=dataset)
    assert [(m.image_id, m.field) for m in report.mismatches] == [
        (images[0].pk, f"change {images[0].label_changes.last().pk} (confirm) old label/status")]
    assert (report.mismatches[0].stored, report.mismatches[0].replayed) == ((3, "relabelled"), (1, "confirmed"))


def test_an_unknown_dataset_is_refused_by_name(decided):
    _out, error = verify("--dataset", "nope")
    assert "dataset 'nope' does not exist (datasets: faces)" in str(error)
