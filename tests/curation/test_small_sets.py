"""Small datasets train reliably (issue 39): a run that looks like a collapse says so, validation on reviewed val
images when they exist (else the noisy split with a minimum of epochs and a patience set by the train size), and
`--seeds K` run groups with their mean and spread."""
import io

import pytest
from django.core.management import call_command

from curation.models import Image, Run
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
