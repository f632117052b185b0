"""The demo's terminal: one progress bar per stage (the job commands' bar), the stages started in order, and the
address and logins printed last once the queue is ready; and the demo's truth registered for the known-truth panel.
tests/test_embedded.py runs the whole demo."""
import pytest
from django.core.management import call_command

from curation.management.commands import demo
from curation.management.jobcommand import JobCommand
from curation.models import Dataset, Job
from curation.truth import known_truth, truth_path
from tests.factories import JobFactory
from training.synthetic_faces import make_synthetic_faces


class Lines:
    """A stand-in for self.stdout.write: collects what the demo writes, with Django's `ending` argument."""

    def __init__(self):
        self.text = ""

    def __call__(self, msg="", ending="\n"):
        self.text += msg + ending


def job(**fields):
    return JobFactory(**{"kind": "train_classifier", "status": Job.Status.RUNNING, **fields})


def test_ready_banner_names_the_address_and_both_logins(settings):
    banner = demo.ready_banner("0.0.0.0:8123", "  known truth: 40 of the queue's first 50 images have wrong labels")
    assert "Open http://0.0.0.0:8123/   (review queue: http://0.0.0.0:8123/review/)" in banner
    assert "reviewer login: reviewer / reviewer    curator login: curator / curator" in banner
    assert "known truth: 40 of the queue's first 50" in banner
    assert str(settings.DATA_DIR) in banner and "Ctrl-C" in banner
    lines = banner.strip().splitlines()
    assert lines[0] == lines[-1] == "=" * 78  # set off by rules so that it cannot be missed


def test_stage_line_is_the_job_commands_bar_with_the_stage(db):
    running = job(progress=0.4, message="fold 2/3: epoch 4/16")
    line = demo.stage_line(1, 4, "train_classifier", running)
    assert line.startswith("[2/4] train the classifier ")
    assert line.endswith(JobCommand.bar(running))
    assert "[############..................]  40.0% running: fold 2/3: epoch 4/16" in line


def test_progress_without_a_terminal_prints_a_line_every_five_percent_and_on_a_new_status(db):
    out = Lines()
    bars = demo.StageProgress(out, tty=False)
    running = job(progress=0.0)
    for progress in (0.0, 0.01, 0.02, 0.049, 0.05, 0.06, 0.5):
        running.progress, running.message = progress, f"step {progress}"
        bars.show(1, 4, "train_classifier", running)
    running.status, running.progress = Job.Status.SUCCEEDED, 1.0
    bars.close(running, 1, 4, "train_classifier")
    lines = out.text.splitlines()
    assert [line.split("% ")[0][-5:] for line in lines] == ["  0.0", "  5.0", " 50.0", "100.0"]
    assert lines[-1].endswith("succeeded: step 0.5")
    assert "\r" not in out.text


def test_progress_on_a_terminal_rewrites_one_line_per_stage(db):
    out = Lines()
    bars = demo.StageProgress(out, tty=True)
    first = job(kind="import_dataset", progress=0.2, message="batch 1")
    bars.show(0, 4, "import_dataset", first)
    bars.show(0, 4, "import_dataset", first)  # unchanged: nothing written
    first.progress, first.status = 1.0, Job.Status.SUCCEEDED
    bars.close(first, 0, 4, "import_dataset")
    second = job(progress=0.1, message="fold 1/3")
    bars.show(1, 4, "train_classifier", second)
    bars.close()
    lines = out.text.split("\n")
    # Each stage leaves one line behind: its bar redrawn in place (\r), ended by a newline.
    assert len(lines) == 3 and lines[-1] == ""
    assert lines[0].count("\r") == 2 and "[1/4] import the faces" in lines[0]
    assert lines[0].rstrip().endswith("100.0% succeeded: batch 1")
    assert lines[1].count("\r") == 1 and "[2/4] train the classifier" in lines[1]


def test_advance_starts_nothing_while_a_stage_runs_and_stops_on_a_failure(db, tmp_path):
    stages = demo.demo_stages(tmp_path / "labels.csv")
    assert [kind for kind, _ in stages] == ["import_dataset", "train_classifier", "train_cyclegan", "score_ambiguity",
                                            "map_dataset"]
    said = Lines()
    JobFactory(kind="import_dataset", status=Job.Status.SUCCEEDED)
    running = job()
    assert demo.advance(stages, said) == (False, 1, running)
    running.status = Job.Status.FAILED
    running.message = "out of memory"
    running.save()
    assert demo.advance(stages, said) == (True, None, None)
    assert said.text == f"demo stage train_classifier failed (job {running.pk}): out of memory\n"
    assert Job.objects.count() == 2  # nothing queued after a failure


def test_advance_is_done_when_every_stage_succeeded(db, tmp_path):
    stages = demo.demo_stages(tmp_path / "labels.csv")
    for kind, _ in stages:
        JobFactory(kind=kind, status=Job.Status.SUCCEEDED)
    assert demo.advance(stages, Lines()) == (True, None, None)


def test_the_demo_settings_are_ones_the_jobs_accept():
    """The stage parameters are validated by the jobs themselves when queued; here the parts that need no dataset."""
    from gan.config import make_config
    from training.config import TrainConfig

    TrainConfig(**{k: v for k, v in demo.DEMO_CLASSIFIER.items() if k != "folds"}).validate()
    cfg = make_config(demo.DEMO_CYCLEGAN["profile"], **{k: v for k, v in demo.DEMO_CYCLEGAN.items() if k != "profile"})
    assert cfg.size == demo.DEMO_FACES["size"] and cfg.size % 4 == 0


def test_the_demo_registers_its_truth_once_imported(db, inline_jobs, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    faces = tmp_path / "faces"
    make_synthetic_faces(faces, n=48, size=32, noise=0.25, seed=3)
    said = Lines()
    demo.register_demo_truth(faces, said)  # not imported yet: nothing to register
    assert not (settings.DATA_DIR / "truth").exists()
    settings.FER_IMPORT_ROOTS = [*settings.FER_IMPORT_ROOTS, tmp_path]
    call_command("import_dataset", str(faces / "labels.csv"), "--format", "csv", "--name", demo.DEMO_DATASET,
                 "--inline")
    dataset = Dataset.objects.get(name=demo.DEMO_DATASET)
    imported = Job.objects.get(kind="import_dataset")
    Job.objects.filter(pk=imported.pk).update(status=Job.Status.RUNNING)  # still importing: half the paths are known
    demo.register_demo_truth(faces, said)
    assert not truth_path(dataset).exists() and said.text == ""
    Job.objects.filter(pk=imported.pk).update(status=Job.Status.SUCCEEDED)
    demo.register_demo_truth(faces, said)
    assert truth_path(dataset).exists() and said.text == ""
    assert known_truth(dataset=dataset).wrong_total > 0
    assert demo.queue_summary(dataset) == ""  # not scored: no queue figure to print


def test_the_demo_says_why_its_truth_is_not_registered(db, inline_jobs, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    faces = tmp_path / "faces"
    make_synthetic_faces(faces, n=24, size=32, seed=3)
    settings.FER_IMPORT_ROOTS = [*settings.FER_IMPORT_ROOTS, tmp_path]
    call_command("import_dataset", str(faces / "labels.csv"), "--format", "csv", "--name", demo.DEMO_DATASET,
                 "--inline")
    (faces / "truth.csv").write_text("path,true_label\nother.png,happy\n")
    said = Lines()
    demo.register_demo_truth(faces, said)
    assert "the known-truth panel stays off" in said.text and "are not images of demo" in said.text


@pytest.mark.parametrize("scored, expected", [(True, "known truth: "), (False, "")])
def test_queue_summary_reads_the_known_truth(db, inline_jobs, settings, tmp_path, scored, expected):
    settings.DATA_DIR = tmp_path / "data"
    faces = tmp_path / "faces"
    make_synthetic_faces(faces, n=40, size=32, noise=0.3, seed=2)
    settings.FER_IMPORT_ROOTS = [*settings.FER_IMPORT_ROOTS, tmp_path]
    call_command("import_dataset", str(faces / "labels.csv"), "--format", "csv", "--name", demo.DEMO_DATASET,
                 "--inline")
    demo.register_demo_truth(faces, Lines())
    dataset = Dataset.objects.get(name=demo.DEMO_DATASET)
    if scored:
        dataset.images.filter(split="train").update(suspicion=0.5)
    summary = demo.queue_summary(dataset)
    assert summary.startswith("  " + expected) if expected else summary == ""
    if scored:
        k = known_truth(dataset=dataset)
        assert f"{k.queue_wrong} of the queue's first {min(50, k.queue_scored)} images have wrong labels" in summary
