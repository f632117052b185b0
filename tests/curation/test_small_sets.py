"""Small datasets train reliably (issue 39): a run that looks like a collapse says so, validation on reviewed val
images when they exist (else the noisy split with a minimum of epochs and a patience set by the train size), and
`--seeds K` run groups with their mean and spread."""
import io

import pytest
from django.core.management import call_command

from curation.models import Image, Run
from curation.services import image_label_change
from tests.curation.conftest import square_dataset

TINY = ["--arch", "small_cnn", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("inline_jobs", "one_torch_thread")


def wrong_val_labels(name):
    """Every val image's label moved to the next class: the tiniest, noisiest validation split there is."""
    for image in Image.objects.filter(dataset__name=name, split="val"):
        Image.objects.filter(pk=image.pk).update(original_label=(image.original_label + 1) % 8,
                                                 label=(image.label + 1) % 8)


@pytest.mark.django_db
def test_a_run_stopped_at_epoch_1_by_a_noisy_val_split_is_flagged_in_the_command_and_on_the_run_page(
        tmp_path, client, user):
    name = square_dataset(tmp_path)
    wrong_val_labels(name)
    out = io.StringIO()
    call_command("train_classifier", "--dataset", name, *TINY, "--epochs", "8", "--patience", "1",
                 "--min-epochs", "0", "--inline", stdout=out, stderr=io.StringIO())
    run = Run.objects.get()
    assert run.best_epoch == 1 and len(run.history) < 8, (run.best_epoch, len(run.history))
    said = out.getvalue()
    assert "WARNING: run" in said and "looks like a collapse: kept epoch 1 of 8, in the first quarter" in said
    assert "early stopping on the noisy validation split" in said and "--seed 1" in said and "--patience" in said

    client.force_login(user)
    page = client.get(f"/datasets/{name}/runs/").content.decode()
    assert f'class="notice notice-error collapse" data-run="{run.pk}"' in page
    assert "kept epoch 1 of 8, in the first quarter" in page and "another seed" in page


@pytest.mark.django_db
def test_reviewed_val_images_choose_the_kept_epoch_on_their_reviewed_labels(tmp_path, client, user):
    name = square_dataset(tmp_path)
    truth = dict(Image.objects.filter(dataset__name=name, split="val").values_list("pk", "label"))
    wrong_val_labels(name)
    for pk, label in truth.items():  # a reviewer puts every val label right
        image_label_change(image_id=pk, action="relabel", label=label, expected_version=1, user=user)
    call_command("train_classifier", "--dataset", name, *TINY, "--epochs", "6", "--patience", "2", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    run = Run.objects.get()
    assert run.selection["validation"] == {"on": "reviewed", "images": 36, "min_epochs": 0, "patience": 2,
                                           "why": run.selection["validation"]["why"]}
    # On the wrong labels epoch 1 is kept (the first test) and the accuracy falls towards 0; on the reviewed ones
    # the model improves past epoch 1, well above chance.
    assert run.best_epoch > 1 and max(h["val_acc"] for h in run.history) > 0.3, run.history
    client.force_login(user)
    page = client.get(f"/datasets/{name}/runs/").content.decode()
    assert "Validation: reviewed val images (36 images)" in page


@pytest.mark.django_db
def test_without_reviewed_val_images_the_noisy_split_waits_a_minimum_of_epochs_set_by_the_train_size(tmp_path):
    name = square_dataset(tmp_path)
    wrong_val_labels(name)
    out = io.StringIO()
    call_command("train_classifier", "--dataset", name, *TINY, "--epochs", "6", "--inline", stdout=out,
                 stderr=io.StringIO())
    run = Run.objects.get()
    # 168 train images in batches of 32: 6 steps an epoch, so the minimum is capped at half the epochs and the
    # patience at all of them; the kept epoch is not before the minimum even though epoch 1 scored best.
    validation = run.selection["validation"]
    assert (validation["on"], validation["images"], validation["min_epochs"], validation["patience"]) == \
        ("noisy", 36, 3, 6)
    assert run.config["min_epochs"] == 3 and run.config["early_stopping_patience"] == 6
    assert run.best_epoch >= 3 and len(run.history) == 6
    assert "validation: early stopping and the kept epoch on the noisy val split (36 images), min epochs 3" in \
        out.getvalue()
