"""CycleGAN jobs through the product: training on the right images, resume after a killed worker, and generated
images that only ever come from train-split sources."""
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from curation.jobs.errors import JobParamsError
from curation.jobs.services import job_enqueue
from curation.models import GanModel, GeneratedImage, Image, Job
from curation.services import image_label_change
from tests.conftest import wait_for
from tests.curation.conftest import square_dataset

FAST = ["--profile", "cpu", "--size", "32", "--batch-size", "4"]

pytestmark = pytest.mark.usefixtures("inline_jobs", "one_torch_thread")


@pytest.mark.django_db
def test_train_then_generate_from_train_sources_only(tmp_path, settings, user):
    name = square_dataset(tmp_path, n=240)
    # happy = 1, sad = 2 in the squares' class order
    excluded = Image.objects.filter(dataset__name=name, split="train", label=1).first()
    image_label_change(image_id=excluded.pk, action="exclude", expected_version=1, user=user)
    out = io.StringIO()
    call_command("train_cyclegan", "--dataset", name, "--pair", "happy", "sad", *FAST, "--epochs", "1",
                 "--epochs-decay", "1", "--inline", stdout=out, stderr=io.StringIO())
    gan = GanModel.objects.get()
    happy_train = Image.objects.filter(dataset__name=name, split="train", label=1).exclude(pk=excluded.pk).count()
    assert gan.status == GanModel.Status.SUCCEEDED and gan.epoch == 2 and gan.n_source == happy_train
    assert len(gan.losses) == 2 and all((settings.MEDIA_ROOT / e["samples"]).exists() for e in gan.losses)
    assert "ssim_to_source" in gan.losses[-1]["quality"]["AB"]
    assert "happy <-> sad" in out.getvalue()
    # It says whether each generator passed its quality check, and where the sample grids are, whole (issue 35).
    for name_ in ("happy->sad", "sad->happy"):
        assert re.search(rf"  {name_} generator (passed|FAILED|was not measured by) its quality check at epoch 2 ",
                         out.getvalue()), out.getvalue()
    grids = re.search(r"sample grids: (\S+)/", out.getvalue()).group(1)
    assert Path(grids).is_absolute() and Path(grids).is_dir(), grids

    call_command("generate_images", "--dataset", name, "--pair", "sad", "happy", "--n", "1000", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    generated = GeneratedImage.objects.select_related("source_image")
    assert generated.exists()
    assert {g.source_image.split for g in generated} == {"train"}
    assert excluded.pk not in {g.source_image_id for g in generated}
    assert {(g.source_image.label, g.target_label) for g in generated} == {(1, 2), (2, 1)}
    first = generated.count()
    call_command("generate_images", "--dataset", name, "--pair", "happy", "sad", "--n", "1000", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert GeneratedImage.objects.count() == first  # a re-run adds nothing twice


@pytest.mark.django_db
def test_a_generator_that_failed_its_quality_check_generates_only_when_asked(tmp_path):
    name = square_dataset(tmp_path, n=240)
    call_command("train_cyclegan", "--dataset", name, "--pair", "happy", "sad", *FAST, "--epochs", "1",
                 "--epochs-decay", "0", "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    gan = GanModel.objects.get()
    # As the quality instrument records it when the dataset's classifier calls happy->sad outputs sad no more
    # often than the happy sources, and sad->happy outputs happy far more often than the sad sources.
    gan.losses[-1]["quality"]["AB"].update(target_rate=0.10, source_target_rate=0.08)
    gan.losses[-1]["quality"]["BA"].update(target_rate=0.70, source_target_rate=0.05)
    gan.save(update_fields=["losses"])
    out = io.StringIO()
    call_command("generate_images", "--dataset", name, "--pair", "happy", "sad", "--n", "5", "--inline",
                 stdout=out, stderr=io.StringIO())
    assert set(GeneratedImage.objects.values_list("target_label", flat=True)) == {1}  # only sad -> happy
    assert "happy->sad: 0 generated images (failed its quality check" in out.getvalue()
    job = Job.objects.filter(kind="generate_images").first()
    assert job.result["quality_check"] == {"happy->sad": "failed", "sad->happy": "passed"}
    call_command("generate_images", "--dataset", name, "--pair", "happy", "sad", "--n", "5", "--include-failing",
                 "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    assert sorted(GeneratedImage.objects.values_list("target_label", flat=True)) == [1] * 5 + [2] * 5


@pytest.mark.django_db
def test_bad_requests_name_the_problem(tmp_path):
    name = square_dataset(tmp_path, n=80)
    with pytest.raises(JobParamsError, match="unknown label 'joy'"):
        job_enqueue(kind="train_cyclegan", params={"dataset": name, "pair": ["happy", "joy"]})
    with pytest.raises(JobParamsError, match="no trained CycleGAN for happy and sad"):
        job_enqueue(kind="generate_images", params={"dataset": name, "pair": ["happy", "sad"], "n": 5})
    assert not Job.objects.exclude(kind="import_dataset").exists()


@pytest.mark.worker
def test_training_resumes_after_the_worker_is_killed(start_worker, tmp_path, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.5
    name = square_dataset(tmp_path, n=240)
    first = start_worker()
    job = job_enqueue(kind="train_cyclegan", params={"dataset": name, "pair": ["happy", "sad"], "profile": "cpu",
                                                     "size": 32, "batch_size": 4, "epochs": 4, "epochs_decay": 2})
    wait_for(lambda: (GanModel.objects.first() or GanModel(epoch=0)).epoch >= 2, timeout=240, interval=0.2,
             what="two epochs")
    first.kill()
    done = GanModel.objects.get().epoch
    assert done < 6, "training ended before the kill"
    second = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=300, interval=0.5, what="the resumed training")
    job.refresh_from_db()
    gan = GanModel.objects.get()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2
    assert [e["epoch"] for e in gan.losses] == [1, 2, 3, 4, 5, 6]
    assert "resuming CycleGAN" in second.log()


@pytest.mark.django_db
def test_the_command_says_when_a_curator_chose_another_cyclegan_of_the_pair(settings):
    from django.utils import timezone

    from curation.management.commands.train_cyclegan import Command
    from tests.factories import DatasetFactory, GanModelFactory, JobFactory

    ds = DatasetFactory(name="faces")
    losses = [{"epoch": 1, "cycle": 1.0, "samples": "gans/x/samples/epoch0001.png"}]
    chosen = GanModelFactory(dataset=ds, status=GanModel.Status.SUCCEEDED, epoch=1, losses=losses,
                             chosen_at=timezone.now())
    new = GanModelFactory(dataset=ds, status=GanModel.Status.SUCCEEDED, epoch=1, losses=losses)
    out = io.StringIO()
    command = Command(stdout=out)
    command.report(JobFactory(kind="train_cyclegan", result={"gan": new.pk}))
    assert (f"note: scoring, the review card and generation use CycleGAN {chosen.pk} for happy <-> sad, chosen by a "
            f"curator") in out.getvalue()
    out.truncate(0)
    command.report(JobFactory(kind="train_cyclegan", result={"gan": chosen.pk}))
    assert "note:" not in out.getvalue()
