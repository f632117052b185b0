"""`pretrain_ssl` (issue 31): self-supervised pretraining on a dataset's own images, the test split left out, as a
command, an API kind and a jobs-page form, with progress and cancel; `--init ssl:ID` starts a run from its backbone.
A dataset with fewer images than one batch is refused with nothing queued, and a cancelled or unfinished
pretraining leaves nothing `--init` takes."""
import io

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.classifier.handler import _load_init
from curation.classifier.pretrain_handler import pretrain_dir
from curation.jobs.services import job_cancel, job_enqueue
from curation.models import Image, Job, Run
from tests.conftest import wait_for
from tests.curation.conftest import square_dataset
from tests.factories import JobFactory
from training.init import InitError, init_weights
from training.models import build_model

TINY = {"arch": "small_cnn", "size": 32, "batch_size": 32}
TINY_ARGS = ["--arch", "small_cnn", "--size", "32", "--batch-size", "32"]


def _quiet():
    return {"stdout": io.StringIO(), "stderr": io.StringIO()}


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_jobs", "one_torch_thread")
def test_pretraining_reads_every_image_but_the_test_splits_and_a_run_starts_from_it(tmp_path, settings):
    name = square_dataset(tmp_path)
    out = io.StringIO()
    call_command("pretrain_ssl", "--dataset", name, "--method", "vicreg", *TINY_ARGS, "--epochs", "2", "--inline",
                 stdout=out, stderr=io.StringIO())
    job = Job.objects.get(kind="pretrain_ssl")
    assert job.result["method"] == "vicreg" and "small_cnn (vicreg) at 32 px" in out.getvalue()
    outside_test = Image.objects.filter(dataset__name=name).exclude(split="test").count()
    assert job.status == Job.Status.SUCCEEDED and job.progress == 1.0
    assert job.result["images"] == outside_test == 204  # 240 images, 36 of them test
    assert [h["epoch"] for h in job.result["history"]] == [1, 2]
    assert f"--init ssl:{job.pk}" in out.getvalue()
    weights = torch.load(settings.MEDIA_ROOT / job.result["weights"], weights_only=True)
    assert weights["config"]["method"] == "vicreg"
    assert not (pretrain_dir(job.pk) / "resume.pt").exists()  # only the weights stay

    call_command("train_classifier", "--dataset", name, *TINY_ARGS, "--epochs", "1", "--init", f"ssl:{job.pk}",
                 "--inline", **_quiet())
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED
    init = run.selection["init"]
    # Every backbone tensor taken: all of the classifier's but its class layer's weight and bias.
    assert init["from"] == f"ssl:{job.pk}" and init["loaded"] == init["of"] - 2 == len(weights["model"])
    assert init["skipped"] == []


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_jobs", "one_torch_thread")
def test_a_retrain_starts_from_the_newest_pretraining_that_fits_unless_told_scratch(tmp_path, curator_api, as_curator):
    name = square_dataset(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY_ARGS, "--epochs", "1", "--inline", **_quiet())

    def retrain(*args):
        out, err = io.StringIO(), io.StringIO()
        call_command("retrain", "--dataset", name, "--reduced", *args, "--inline", stdout=out, stderr=err)
        return Run.objects.order_by("-id").first(), err.getvalue() + out.getvalue()

    run, said = retrain()  # nothing pretrained yet: a random start, and the command says how to get a better one
    assert "init" not in run.selection and "starts from: a random start" in said and "pretrain_ssl" in said
    call_command("pretrain_ssl", "--dataset", name, *TINY_ARGS, "--epochs", "1", "--inline", **_quiet())
    job = Job.objects.get(kind="pretrain_ssl")
    # Newer ones it cannot take are passed over: another classifier's, and a failed one.
    JobFactory(kind="pretrain_ssl", status=Job.Status.SUCCEEDED, result=job.result,
               params={**job.params, "arch": "resnet18"})
    JobFactory(kind="pretrain_ssl", status=Job.Status.FAILED, params=job.params)
    run, said = retrain()
    assert run.selection["init"]["from"] == f"ssl:{job.pk}" and run.selection["init"]["loaded"] > 0
    assert f"starts from: ssl:{job.pk}" in said
    assert f"the two start differently: run {run.derived_from_id} from a random start, this run from ssl:{job.pk}" \
        in said
    run, said = retrain("--init", "scratch")
    assert "init" not in run.selection and "starts from: a random start" in said
    # The API's retrain and the retrain form take the same default, and the form's preview names it.
    fragment = as_curator.get("/jobs/retrain-preview/", {"retrain-dataset": name, "retrain-reduced": "on"})
    assert f"self-supervised pretraining job {job.pk} " in fragment.content.decode()
    queued = Job.objects.count()
    response = curator_api.post("/api/jobs/", {"kind": "retrain", "params": {"dataset": name}}, format="json")
    assert response.status_code == 201 and Job.objects.get(pk=response.json()["id"]).params["init"] == f"ssl:{job.pk}"
    page = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": name, "retrain-reduced": "on"})
    assert page.status_code == 302 and Job.objects.count() == queued + 2
    assert Job.objects.order_by("-id").first().params["init"] == f"ssl:{job.pk}"


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_jobs")
def test_train_classifier_and_so_the_queue_start_from_the_newest_pretraining_unless_told_scratch(
        tmp_path, curator_api, as_curator):
    name = square_dataset(tmp_path)
    call_command("pretrain_ssl", "--dataset", name, *TINY_ARGS, "--epochs", "1", "--inline", **_quiet())
    job = Job.objects.get(kind="pretrain_ssl")

    def train(*args):
        err = io.StringIO()
        call_command("train_classifier", *TINY_ARGS, "--epochs", "1", *args, "--inline", stdout=io.StringIO(),
                     stderr=err)
        return Run.objects.order_by("-id").first(), err.getvalue()

    # The out-of-fold models that feed the queue start from the pretraining (the only dataset, named or not), and
    # the preview says so; --init scratch asks for a random start.
    run, said = train("--folds", "2")
    assert run.folds == 2 and run.selection["init"]["from"] == f"ssl:{job.pk}" and run.selection["init"]["loaded"] > 0
    assert f"starts from: ssl:{job.pk}" in said
    run, said = train("--dataset", name, "--init", "scratch")
    assert "init" not in run.selection and "starts from: a random start" in said
    # The train form and the API's train_classifier take the same default; a start they name is kept.
    page = as_curator.post("/jobs/start/train/", {"train-dataset": name, "train-arch": "small_cnn"})
    assert page.status_code == 302 and Job.objects.order_by("-id").first().params["init"] == f"ssl:{job.pk}"
    for params, start in (({"dataset": name}, f"ssl:{job.pk}"), ({"dataset": name, "init": "scratch"}, None)):
        response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {**params, **TINY}},
                                    format="json")
        assert response.status_code == 201, response.json()
        assert Job.objects.get(pk=response.json()["id"]).params.get("init") == start


@pytest.mark.django_db
def test_a_dataset_with_fewer_images_than_one_batch_is_refused_and_nothing_is_queued(faces, curator_api, as_curator):
    problem = "dataset 'faces' has 4 images outside its test split, fewer than one batch of 128"
    with pytest.raises(CommandError, match=problem):
        call_command("pretrain_ssl", "--dataset", "faces", "--inline", **_quiet())
    response = curator_api.post("/api/jobs/", {"kind": "pretrain_ssl", "params": {"dataset": "faces"}},
                                format="json")
    assert response.status_code == 400 and problem in str(response.json())
    page = as_curator.post("/jobs/start/pretrain/", {"pretrain-dataset": "faces", "pretrain-arch": "small_cnn"})
    assert page.status_code == 400 and problem.replace("'", "&#x27;") in page.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_jobs")
def test_the_jobs_page_form_and_the_api_start_a_pretraining(tmp_path, as_curator, curator_api):
    name = square_dataset(tmp_path)
    assert "Pretrain without labels (self-supervised)" in as_curator.get("/jobs/").content.decode()
    response = as_curator.post("/jobs/start/pretrain/", {
        "pretrain-dataset": name, "pretrain-method": "vicreg", "pretrain-arch": "small_cnn", "pretrain-size": "32",
        "pretrain-epochs": "3", "pretrain-batch_size": "32"})
    job = Job.objects.get(kind="pretrain_ssl")
    assert response.status_code == 302 and job.kind == "pretrain_ssl" and job.queue == "gpu"
    assert (job.params["method"], job.params["arch"], job.params["size"], job.params["epochs"],
            job.params["batch_size"]) == ("vicreg", "small_cnn", 32, 3, 32)
    response = curator_api.post("/api/jobs/", {"kind": "pretrain_ssl", "params": {"dataset": name, **TINY}},
                                format="json")
    assert response.status_code == 201 and response.json()["kind"] == "pretrain_ssl"
    assert Job.objects.get(pk=response.json()["id"]).params["method"] == "simclr"  # the default
    response = curator_api.post("/api/jobs/", {"kind": "pretrain_ssl",
                                               "params": {"dataset": name, "method": "byol", **TINY}}, format="json")
    assert response.status_code == 400 and "method must be one of simclr, vicreg, not 'byol'" in str(response.json())
    assert Job.objects.filter(kind="pretrain_ssl").count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_jobs")
def test_an_unfinished_or_mismatched_pretraining_is_refused_by_name(tmp_path, settings, curator_api, as_curator):
    name = square_dataset(tmp_path)
    cases = {"ssl:999": "there is no pretrain_ssl job 999"}
    for status, why in ((Job.Status.CANCELLED, "it was cancelled and left no weights"),
                        (Job.Status.FAILED, "it failed and left no weights"),
                        (Job.Status.RUNNING, "it has not finished yet"), (Job.Status.QUEUED, "it has not finished yet")):
        job = JobFactory(kind="pretrain_ssl", status=status, params={"dataset": name, **TINY})
        cases[f"ssl:{job.pk}"] = f"pretraining job {job.pk} is {status}: {why}"
    gone = JobFactory(kind="pretrain_ssl", status=Job.Status.SUCCEEDED, params={"dataset": name, **TINY},
                      result={"weights": "ssl/gone/backbone.pt"})
    cases[f"ssl:{gone.pk}"] = f"pretraining job {gone.pk}'s weights file is missing"
    jobs_before = Job.objects.count()
    for init, problem in cases.items():
        with pytest.raises(CommandError, match=problem):
            call_command("train_classifier", "--dataset", name, *TINY_ARGS, "--init", init, "--inline", **_quiet())
        with pytest.raises(CommandError, match=problem):
            call_command("retrain", "--dataset", name, *TINY_ARGS, "--init", init, "--inline", **_quiet())
        response = curator_api.post("/api/jobs/", {"kind": "retrain", "params": {
            "dataset": name, **TINY, "init": init}}, format="json")
        assert response.status_code == 400 and problem in str(response.json())
        page = as_curator.post("/jobs/start/retrain/", {"retrain-dataset": name, "retrain-init": init})
        assert page.status_code == 400 and problem in page.content.decode().replace("&#x27;", "'")
    # A pretraining of another classifier: the run would take none of it.
    other = JobFactory(kind="pretrain_ssl", status=Job.Status.SUCCEEDED, params={"dataset": name, **TINY},
                       result={"weights": "ssl/other/backbone.pt"})
    (settings.MEDIA_ROOT / "ssl/other").mkdir(parents=True)
    (settings.MEDIA_ROOT / "ssl/other/backbone.pt").write_bytes(b"")
    with pytest.raises(CommandError, match=f"init 'ssl:{other.pk}' pretrained small_cnn at 32 px, but this run "
                                           f"trains resnet18 at 32 px: give --arch small_cnn --size 32"):
        call_command("train_classifier", "--dataset", name, "--arch", "resnet18", "--size", "32", "--init",
                     f"ssl:{other.pk}", "--inline", **_quiet())
    assert Job.objects.count() == jobs_before + 1 and not Job.objects.filter(kind="train_classifier").exists()


def _files_init_takes(folder):
    """The files under folder that --init would load into the classifier (small_cnn at 32 px)."""
    takes = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            init_weights(build_model("small_cnn", 8, 32), _load_init(str(path)), arch="small_cnn")
        except InitError:
            continue
        takes.append(path.relative_to(folder).as_posix())
    return takes


@pytest.mark.worker
def test_a_worker_pretrains_then_trains_from_it_and_a_cancelled_pretraining_leaves_nothing(start_worker, tmp_path,
                                                                                         settings, curator_api):
    name = square_dataset(tmp_path)
    start_worker()
    # End to end on the worker: a tiny pretraining, then a run that starts from it.
    job = job_enqueue(kind="pretrain_ssl", params={"dataset": name, **TINY, "epochs": 1})
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, interval=0.2, what="the pretraining")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    run_job = job_enqueue(kind="train_classifier", params={"dataset": name, **TINY, "epochs": 1,
                                                           "init": f"ssl:{job.pk}"})
    wait_for(lambda: Job.objects.get(pk=run_job.pk).is_finished, timeout=180, interval=0.2, what="the run")
    run = Run.objects.get(job=run_job)
    assert run.status == Run.Status.SUCCEEDED and run.selection["init"]["from"] == f"ssl:{job.pk}"
    assert run.selection["init"]["loaded"] == run.selection["init"]["of"] - 2

    # A long pretraining, cancelled once it is training: it ends cancelled and leaves nothing --init takes.
    long = job_enqueue(kind="pretrain_ssl", params={"dataset": name, **TINY, "epochs": 200})
    wait_for(lambda: "SimCLR: epoch" in Job.objects.get(pk=long.pk).message, timeout=120, interval=0.2,
             what="the pretraining to train")
    job_cancel(job_id=long.pk)
    wait_for(lambda: Job.objects.get(pk=long.pk).is_finished, timeout=60, interval=0.2, what="the cancel")
    long.refresh_from_db()
    assert long.status == Job.Status.CANCELLED and long.result is None
    assert not pretrain_dir(long.pk).exists()
    # Of every file pretrainings wrote, --init takes only the finished one's weights.
    assert _files_init_takes(settings.MEDIA_ROOT / "ssl") == [f"job{job.pk}/backbone.pt"]
    response = curator_api.post("/api/jobs/", {"kind": "train_classifier", "params": {
        "dataset": name, **TINY, "init": f"ssl:{long.pk}"}}, format="json")
    assert response.status_code == 400
    assert f"pretraining job {long.pk} is cancelled: it was cancelled and left no weights" in str(response.json())
