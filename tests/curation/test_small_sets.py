"""Small datasets train reliably (issue 39): a run that looks like a collapse says so, validation on reviewed val
images when they exist (else the noisy split with a minimum of epochs and a patience set by the train size), and
`--seeds K` run groups with their mean and spread."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import Image, Job, Run
from curation.services import image_label_change
from tests.curation.conftest import square_dataset
from tests.factories import RunFactory

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
    assert run.selection["size_defaults"]["chosen"] == {}  # --batch-size given: kept as given
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
def test_without_reviewed_val_images_the_noisy_split_waits_a_minimum_of_epochs_set_by_the_train_size(
        tmp_path, client, user):
    name = square_dataset(tmp_path)
    wrong_val_labels(name)
    out = io.StringIO()
    # No --batch-size: a train split under 5,000 images takes the small-split default, 32, and says so.
    call_command("train_classifier", "--dataset", name, "--arch", "small_cnn", "--epochs", "6", "--inline",
                 stdout=out, stderr=io.StringIO())
    run = Run.objects.get()
    assert run.config["batch_size"] == 32 and run.selection["size_defaults"]["chosen"] == {"batch_size": 32}
    assert "defaults for the size: train split of 168 images, under 5,000: batch size 32" in out.getvalue()
    client.force_login(user)
    assert "Defaults for the size: train split of 168 images, under 5,000: batch size 32." in \
        client.get(f"/datasets/{name}/runs/").content.decode()
    # 168 train images in batches of 32: 6 steps an epoch, so the minimum is capped at half the epochs and the
    # patience at all of them; the kept epoch is not before the minimum even though epoch 1 scored best.
    validation = run.selection["validation"]
    assert (validation["on"], validation["images"], validation["min_epochs"], validation["patience"]) == \
        ("noisy", 36, 3, 6)
    assert run.config["min_epochs"] == 3 and run.config["early_stopping_patience"] == 6
    assert run.best_epoch >= 3 and len(run.history) == 6
    assert "validation: early stopping and the kept epoch on the noisy val split (36 images), min epochs 3" in \
        out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("k", ["0", "21"])
def test_seeds_out_of_range_are_refused_naming_the_value_and_nothing_is_queued(tmp_path, k):
    name = square_dataset(tmp_path, n=40)
    jobs_before = Job.objects.count()
    for command in ("train_classifier", "retrain"):
        with pytest.raises(CommandError, match=f"seeds must be 1-20, not {k}"):
            call_command(command, "--dataset", name, "--seeds", k, "--inline", stdout=io.StringIO(),
                         stderr=io.StringIO())
    assert Job.objects.count() == jobs_before and not Run.objects.exists()


@pytest.mark.django_db
def test_retrain_with_seeds_trains_a_run_group_whose_mean_and_spread_the_comparison_reports(tmp_path, as_curator):
    name = square_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY, "--epochs", "2", "--seed", "7", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    base = Run.objects.get()
    # The retrain form offers seeds on this small train split.
    assert 'name="retrain-seeds"' in as_curator.get(f"/jobs/?start=retrain&dataset={name}").content.decode()
    out = io.StringIO()
    call_command("retrain", "--dataset", name, "--seeds", "2", "--inline", stdout=out, stderr=io.StringIO())
    runs = list(Run.objects.exclude(pk=base.pk).order_by("id"))
    assert [r.config["seed"] for r in runs] == [7, 8] and runs[0].group and runs[0].group == runs[1].group
    assert all(r.derived_from_id == base.pk for r in runs)
    acc = [r.test_metrics["accuracy"] for r in runs]
    mean = sum(acc) / 2
    assert f"seeds: group {runs[0].group}: 2 runs (seeds 7, 8), test accuracy mean {mean:.4f}" in out.getvalue()
    page = as_curator.get(f"/runs/compare/?ids={base.pk},{runs[0].pk},{runs[1].pk}").content.decode()
    assert f'<tr data-group="{runs[0].group}">' in page
    assert f'<td class="group-mean">{mean * 100:.1f} %</td>' in page


@pytest.mark.django_db
def test_the_comparison_warns_of_a_retrain_far_below_the_run_it_derives_from(as_reviewer, faces):
    history = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.6, "val_acc": 0.5} for e in (1, 2, 3, 4)]
    metrics = {"accuracy": 0.45, "macro_f1": 0.4}
    base = RunFactory(dataset=faces, status=Run.Status.SUCCEEDED, history=history, best_epoch=4,
                      config={"epochs": 4, "seed": 0}, test_metrics=metrics)
    retrain = RunFactory(dataset=faces, status=Run.Status.SUCCEEDED, history=history, best_epoch=4,
                         config={"epochs": 4, "seed": 0}, test_metrics={**metrics, "accuracy": 0.24},
                         derived_from=base)
    page = as_reviewer.get(f"/runs/compare/?ids={base.pk},{retrain.pk}").content.decode()
    assert f'class="notice notice-error collapse" data-run="{retrain.pk}"' in page
    assert f"test accuracy 24.0% is 21.0 points below run {base.pk}" in page
    assert f'data-run="{base.pk}"><strong>' not in page
