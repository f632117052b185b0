"""`train_classifier --init`: a run starts from weights on disk (an earlier run's model, or a file below the import
roots), records what it loaded, and a bad start is refused before anything is queued, or fails the job by name."""
import io

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from torchvision.models import resnet18

from curation.models import Job, Run
from tests.curation.conftest import square_dataset

pytestmark = pytest.mark.usefixtures("inline_jobs")
TINY = ["--arch", "small_cnn", "--size", "32", "--epochs", "1", "--batch-size", "32"]


def _weights(run, settings):
    return torch.load(settings.MEDIA_ROOT / run.checkpoint, weights_only=True)["model"]


@pytest.mark.django_db
def test_a_run_starts_from_an_earlier_runs_model(tmp_path, settings):
    name = square_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    first = Run.objects.get()
    # A learning rate too small to move anything: the second run's weights are the first's, as it started there.
    call_command("train_classifier", "--dataset", name, *TINY, "--lr", "1e-12", "--init", f"run:{first.pk}",
                 "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    second = Run.objects.exclude(pk=first.pk).get()
    assert second.selection["init"]["from"] == f"run:{first.pk}"
    assert second.selection["init"]["loaded"] == second.selection["init"]["of"]
    before, after = _weights(first, settings), _weights(second, settings)
    for key in ("features.0.weight", "head.3.weight"):
        torch.testing.assert_close(after[key], before[key], atol=1e-6, rtol=1e-5)


@pytest.mark.django_db
def test_weights_for_another_architecture_fail_the_job_by_name(tmp_path, settings):
    name = square_dataset(tmp_path)
    imports = settings.DATA_DIR / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    torch.save(resnet18().state_dict(), imports / "resnet18.pt")
    with pytest.raises(CommandError, match="none of its 122 tensors fits small_cnn"):
        call_command("train_classifier", "--dataset", name, *TINY, "--init", str(imports / "resnet18.pt"),
                     "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    (imports / "notes.pt").write_text("not weights")
    with pytest.raises(CommandError, match="notes.pt is not a weights file torch can load safely"):
        call_command("train_classifier", "--dataset", name, *TINY, "--init", str(imports / "notes.pt"),
                     "--inline", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize("init, problem", [
    ("/etc/hostname", "is not an existing weights file below the import roots (FER_IMPORT_ROOTS)"),
    ("run:999", "no finished run 999 with a saved model"),
])
def test_a_start_from_elsewhere_is_refused_before_anything_is_queued(init, problem, faces, curator_api):
    with pytest.raises(CommandError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        call_command("train_classifier", "--dataset", "faces", "--init", init, "--inline")
    response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
        "dataset": "faces", "init": init}}, format="json")
    assert response.status_code == 400 and problem in str(response.json())
    assert not Job.objects.exists()
