"""`manage.py bench_cleaning`: a tiny run of the whole benchmark, in this process (--inline, the same Job rows), and
its refusals of bad input."""
import io
import json
import os
import subprocess
import sys

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.cleaning_bench.measure import AUTOMATIC, CEILING, SSL_ALONE, SSL_CEILING, robust_arms, run_names
from curation.cleaning_bench.plan import BenchPlan
from curation.cleaning_bench.report import SECTIONS
from curation.cleaning_bench.reviewers import read_truth
from curation.models import Dataset, Image, Job, LabelChange, ReviewSkip, Run
from tests.conftest import REPO
from training.labels import CLASSES, CODE

# Tiny CycleGANs fail their quality check: --generate-failing lets them feed the augmented run all the same. At
# threshold 1.0 the SSIM rule flags nothing, so its reduced run is the baseline and is not trained again.
TINY = ["--n", "400", "--size", "24", "--epochs", "2", "--folds", "2", "--gan-epochs", "1", "--gan-epochs-decay", "0",
        "--generate-failing", "--threshold", "1.0"]


@pytest.mark.slow
@pytest.mark.django_db
def test_tiny_benchmark_reports_every_run_on_one_test_split(tmp_path, inline_jobs, one_torch_thread):
    out = tmp_path / "bench"
    stdout = io.StringIO()
    call_command("bench_cleaning", *TINY, "--seeds", "2", "--rounds", "2", "--relabel-precision", "0.5",
                 "--robust", "eac,elr", "--ssl-epochs", "1", "--ssl-batch-size", "32",
                 "--out", str(out), "--name", "tiny", "--inline",
                 stdout=stdout, stderr=io.StringIO())
    report = json.loads((out / "report.json").read_text())
    assert set(SECTIONS) <= set(report)
    # The machine is named down to the CPU model and the kernels torch chose: figures repeat on one machine only.
    model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    assert report["machine"]["cpu_model"] == model and model in (out / "report.md").read_text()
    assert report["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    dataset = Dataset.objects.get(name="tiny")
    truth = read_truth(out / "faces" / "truth.csv")

    # The GAN-derived scores beyond SSIM were measured per generator direction, on every train image labelled (as
    # imported) with a class of a pair, against the truth.
    signals = report["gan_signals"]
    assert len(signals["directions"]) == 2 * len(report["plan"]["pairs"])
    paired = {CODE[c] for pair in report["plan"]["pairs"] for c in pair}
    train = Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, original_label__in=paired)
    assert signals["images"] == train.count() and signals["wrong"] == sum(truth[i.path].noisy for i in train)
    assert set(signals["overall"]) >= {"target gain", "source drop", "embedding shift", "cleanlab margin"}
    assert "## GAN signals beyond SSIM" in (out / "report.md").read_text()

    # Every job of the pipeline ran once and succeeded: import, one self-supervised pretraining, 22 classifier runs of
    # 2 seeds each (the SSIM-reduced run is the baseline: nothing flagged; plain training from the pretraining on the
    # noisy, reviewed and true labels and on the review ceiling's; each of the two robust methods' three arms from
    # scratch and from the pretraining), 4 CycleGANs, scores, the second review round's refit and rescore,
    # generation.
    kinds = [k for k in Job.objects.order_by("id").values_list("kind", flat=True) if not k.endswith("_chunk")]
    assert kinds == ["import_dataset", "pretrain_ssl", *["train_classifier"] * 2, *["train_cyclegan"] * 4,
                     "score_ambiguity", *["train_classifier"] * 16, "train_classifier", "score_ambiguity",
                     *["train_classifier"] * 14, *["generate_images"] * 4, *["train_classifier"] * 14]
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}

    # Every run is reported, and all of them were scored on the one untouched test split.
    runs = report["runs"]["runs"]
    plan = BenchPlan(**report["plan"])
    names = run_names(plan)
    assert list(runs) == names and len(names) == 24
    stored = {r.pk: r for r in Run.objects.filter(dataset=dataset)}
    rounds = report["review_rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and rounds[0]["refit_run"] is None
    refit = stored[rounds[1]["refit_run"]]  # out-of-fold models on the labels as reviewed in round 1
    assert refit.folds == 2 and refit.reduced and refit.selection["doubtful"] == "none"
    assert refit.selection["trusted"] == sum(d["action"] != "exclude" for d in report["review_decisions"]
                                             if d["rank"] <= rounds[0]["decisions"])
    assert {seed["run"] for row in runs.values() for seed in row["seeds"]} | {refit.pk} == set(stored)
    ssim_reduced = runs["reduced (SSIM flags, no review)"]
    assert ssim_reduced["same_as"] == "baseline" and ssim_reduced["seeds"] == runs["baseline"]["seeds"]
    assert not Image.objects.filter(dataset__name="tiny", flagged=True).exists()
    for row in runs.values():  # each run's figures are the mean over its two seeds
        assert [stored[seed["run"]].config["seed"] for seed in row["seeds"]] == [0, 1]
        assert row["accuracy"] == pytest.approx(sum(seed["accuracy"] for seed in row["seeds"]) / 2)
        assert row["accuracy_std"] is not None
    hashes = {r.test_split_hash for r in stored.values()}
    assert len(hashes) == 1 and report["runs"]["same_test_split"] and report["runs"]["test_split_hash"] in hashes
    test_images = Image.objects.filter(dataset=dataset, split=Image.Split.TEST)
    assert all(i.label == i.original_label and i.status == Image.Status.UNREVIEWED for i in test_images)
    assert {row["selection"]["test"] for row in runs.values()} == {test_images.count()}
    for row in runs.values():
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1
        assert row["delta_accuracy"] == pytest.approx(row["accuracy"] - runs["baseline"]["accuracy"])
    assert [stored[seed["run"]].folds for seed in runs["baseline"]["seeds"]] == [2, 0]
    assert runs["reviewed + augmented"]["selection"]["generated"] > 0
    # Each robust arm trains with its method, everything else with plain cross-entropy; the SSL arms and the review
    # ceiling's SSL run (and only they) start from the one pretraining's weights, that run on the ceiling's labels; each reviewed + robust run (the SSL start's plain one among
    # them) trains on exactly the reviewed run's images and labels, each oracle arm on the oracle's.
    arms = robust_arms(plan)
    assert {m for _, m, _ in arms.values()} == {"eac", "elr", "none"} and len(arms) == 16
    assert {n for n, (_, m, ssl) in arms.items() if m == "none"} == {
        SSL_ALONE, "reviewed, SSL start", "oracle (true labels), SSL start"}
    pretrained = Job.objects.get(kind="pretrain_ssl")
    for name, row in runs.items():
        review, method, ssl = arms.get(name, (None, "none", name == SSL_CEILING))
        assert {stored[seed["run"]].config["robust"] for seed in row["seeds"]} == {method}, name
        starts = {(stored[seed["run"]].selection.get("init") or {}).get("from") for seed in row["seeds"]}
        assert starts == {f"ssl:{pretrained.pk}" if ssl else None}, name
        if ssl:  # the backbone's tensors were loaded, not only named
            assert all(stored[seed["run"]].selection["init"]["loaded"] > 0 for seed in row["seeds"])
        if review in ("reviewed", "relabels"):
            assert stored[row["run"]].reduced
        if review == "reviewed":
            assert stored[row["run"]].snapshot_hash == stored[runs["reviewed"]["run"]].snapshot_hash, name
        if review == "oracle":
            assert stored[row["run"]].snapshot_hash == stored[runs["oracle (true labels)"]["run"]].snapshot_hash, name
        if review == "alone":
            assert not stored[row["run"]].reduced, name
    assert stored[runs[SSL_CEILING]["run"]].snapshot_hash == stored[runs[CEILING]["run"]].snapshot_hash
    assert stored[runs["reviewed + robust eac + calibrated relabels"]["run"]].selection["relabel_rule"][
        "target"] == 0.5
    assert report["timings"]["retrain: robust elr (no review), SSL start"] > 0  # each arm is timed
    # The oracle trained on the true label of every train image.
    oracle = stored[runs["oracle (true labels)"]["run"]]
    snapshot = (tmp_path / "media" / oracle.snapshot_file).read_text().splitlines()[1:]
    train_rows = [line.split(",") for line in snapshot if line.startswith("train,")]
    paths = dict(Image.objects.filter(dataset=dataset).values_list("pk", "path"))
    assert len(train_rows) == report["dataset"]["train"]
    assert all(CLASSES[truth[paths[int(row[2])]].label] == row[4] for row in train_rows)

    # The simulated reviewers took the queue in suspicion order, through the services, and the audit agrees.
    decisions = report["review_decisions"]
    assert len(decisions) == round(0.1 * report["dataset"]["train"]) == report["review"]["decisions"]
    assert sum(r["decisions"] for r in rounds) == len(decisions) and [d["rank"] for d in decisions] == list(
        range(1, len(decisions) + 1))
    first = rounds[0]["decisions"]
    for part in (decisions[:first], decisions[first:]):  # each round in the order of the queue as then scored
        suspicion = [d["suspicion"] for d in part]
        assert suspicion == sorted(suspicion, reverse=True)
    assert all((d["label_after"] == d["true_label"]) != d["reviewer_wrong"] for d in decisions)
    audit = LabelChange.objects.filter(user__username__startswith="tiny-reviewer-")
    assert report["review_audit"]["ok"] and audit.count() == len(decisions)
    assert sorted(audit.values_list("image_id", flat=True)) == sorted(d["image"] for d in decisions)
    assert report["review"]["noisy_reviewed"] == sum(truth[d["path"]].noisy for d in decisions)

    # The review ceiling took the wrong labels first, with the same error draws, trained on its decisions, and
    # took them back: each image it decided has one decision and one undo by its reviewer, and the reviewed run
    # started from the imported labels.
    ceiling = report["review_ceiling"]
    assert ceiling["decisions"] == len(decisions) and ceiling["undo"]["ok"]
    assert ceiling["noisy_reviewed"] == min(len(decisions), report["detection"]["noisy"])
    ceiling_changes = LabelChange.objects.filter(user__username__startswith="tiny-ceiling-")
    assert ceiling_changes.filter(action="undo").count() == ceiling_changes.exclude(action="undo").count() == \
        len(decisions)
    ceiling_run = stored[runs["review ceiling (perfect queue)"]["run"]]
    assert ceiling_run.selection["relabelled"] == sum(
        c.new_label != c.old_label for c in ceiling_changes.exclude(action="undo"))
    assert stored[runs["reviewed"]["run"]].selection["relabelled"] == sum(
        d["label_after"] != d["label_before"] for d in decisions)

    # Detection of every signal, flags, review precision, GAN quality for every class, the goals.
    signals = report["detection"]["signals"]
    assert set(signals) == {"ssim (raw, published rule)", "gan (normalised, all directions)",
                            "cleanlab (1 - label quality)", "datalab label (1 - neighbours' label score)",
                            "datalab outlier (1 - outlier score)", "suspicion (fused)"}
    for per in signals.values():
        assert 0 <= per["all"]["auroc"] <= 1 and 0 <= per["all"]["ap"] <= 1
        assert per["all"]["noisy"] == report["detection"]["noisy"] == sum(
            truth[p].noisy for p in Image.objects.filter(dataset=dataset, split="train").values_list("path", flat=True))
    assert {"precision", "recall"} <= set(report["detection"]["flags"]["cleanlab (label issue)"])
    directions = [q["direction"] for q in report["gan_quality"]]
    assert sorted(d.split("->")[0] for d in directions) == sorted(CLASSES)
    assert all(q["target_rate_outputs"] is not None for q in report["gan_quality"])
    assert set(report["goals"]) == {"fused_auroc_at_least_cleanlab", "reviewed_recovers_half_the_gap",
                                    "reviewed_robust_recovers_80pct", "best_automatic_recovers_half",
                                    "same_test_split"}
    # The robust goal judges the best reviewed + robust arm against its own method alone, from the same start.
    robust_goal = report["goals"]["reviewed_robust_recovers_80pct"]
    reviewed_arms = [n for n, (review, _, _) in arms.items() if review in ("reviewed", "relabels")]
    best = max(reviewed_arms, key=lambda n: runs[n]["accuracy"])
    _, method, ssl = arms[best]
    alone = next(n for n, arm in arms.items() if arm == ("alone", method, ssl))
    assert robust_goal["run"] == best and robust_goal["robust_alone"] == alone
    assert robust_goal["margin_over_robust_alone"] == pytest.approx(runs[best]["accuracy"] - runs[alone]["accuracy"])
    assert robust_goal["seed_spread"] == max(runs[best]["accuracy_std"], runs[alone]["accuracy_std"])
    # ...and against its bound: the review ceiling trained from the same start.
    bound = SSL_CEILING if ssl else CEILING
    shares = runs[best]["gap_recovered_accuracy"], runs[bound]["gap_recovered_accuracy"]
    assert robust_goal["ceiling"] == bound and robust_goal["ceiling_gap_recovered_accuracy"] == shares[1]
    assert robust_goal["share_of_ceiling"] == (None if None in shares or not shares[1] else pytest.approx(
        shares[0] / shares[1]))
    # The headline's automatic run is the best of those that read no review and no truth.
    automatic = [n for n in runs if n in AUTOMATIC or arms.get(n, ("",))[0] == "alone"]
    assert len(automatic) == 8
    best_automatic = report["goals"]["best_automatic_recovers_half"]
    assert best_automatic["run"] == max(automatic, key=lambda n: runs[n]["accuracy"])
    assert set(best_automatic["candidates"]) == set(automatic)
    md = (out / "report.md").read_text()
    assert all(name in md for name in names) and f"best automatic run** (no review, no truth): " \
        f"{best_automatic['run']}" in md
    bound_line = f"- {bound} (its bound: the same budget and reviewer error on a perfect queue, from the same start)"
    assert (bound_line in md) == (robust_goal["gap_recovered_accuracy"] is not None)  # no gap, no goal lines
    for rel in report["plots"].values():
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(line.startswith("run ") and "gap recovered" in line
               for line in stdout.getvalue().splitlines()) == len(names)


@pytest.mark.slow
@pytest.mark.django_db
def test_the_queue_can_come_from_out_of_fold_models_started_from_the_pretraining(tmp_path, inline_jobs,
                                                                                   one_torch_thread):
    out = tmp_path / "bench"
    call_command("bench_cleaning", *TINY, "--seeds", "2", "--rounds", "2", "--robust", "none", "--ssl-epochs", "1",
                 "--ssl-batch-size", "32", "--queue-start", "ssl", "--out", str(out), "--name", "q", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    report = json.loads((out / "report.json").read_text())
    runs, stored = report["runs"]["runs"], {r.pk: r for r in Run.objects.all()}
    ssl = f"ssl:{Job.objects.get(kind='pretrain_ssl').pk}"

    def start(run):
        return (run.selection.get("init") or {}).get("from")

    # The queue's out-of-fold models started from the pretraining, and their run is the SSL start's first seed; the
    # baseline's two seeds start at random and train no folds; no run more than with the queue from scratch.
    queue_run = [r for r in stored.values() if r.folds]
    first_queue = min(queue_run, key=lambda r: r.pk)
    assert start(first_queue) == ssl and first_queue.selection["init"]["loaded"] > 0
    assert [seed["run"] for seed in runs[SSL_ALONE]["seeds"]][0] == first_queue.pk
    assert [stored[seed["run"]].config["seed"] for seed in runs[SSL_ALONE]["seeds"]] == [0, 1]
    assert {start(stored[seed["run"]]) for seed in runs[SSL_ALONE]["seeds"]} == {ssl}
    baseline = [stored[seed["run"]] for seed in runs["baseline"]["seeds"]]
    assert [(r.folds, start(r), r.config["seed"]) for r in baseline] == [(0, None, 0), (0, None, 1)]
    # The second round's refit starts there too, and it fed the queue the reviewers took in that round.
    refit = stored[report["review_rounds"][1]["refit_run"]]
    assert refit.folds == 2 and start(refit) == ssl
    assert sorted(r.pk for r in queue_run) == [first_queue.pk, refit.pk]
    scored = Job.objects.filter(kind="score_ambiguity").order_by("id")
    assert [j.result["classifier_run"] for j in scored] == [first_queue.pk, refit.pk]
    assert "out-of-fold models from the self-supervised start" in (out / "report.md").read_text()


@pytest.mark.django_db
@pytest.mark.parametrize("args, problem", [
    (["--noise", "0.7"], "noise must be in (0, 0.5)"),
    (["--budget", "0"], "budget must be in (0, 1]"),
    (["--gan-size", "30"], "gan-size must be a multiple of 4"),
    (["--n", "50"], "n must be at least 200"),
    (["--folds", "1"], "folds must be at least 2"),
    (["--rounds", "0"], "rounds must be 1-10"),
    (["--relabel-precision", "1.2"], "relabel-precision must be in (0, 1]"),
    (["--robust", "mixup"], "robust must be one of none, eac, gce, bootstrap, elr, dividemix, glc (or several, "
                            "comma-separated), not 'mixup'"),
    (["--robust", "elr,mixup"], "not 'mixup'"),
    (["--robust", "elr,elr"], "robust names a method twice"),
    (["--robust", "none,elr"], "robust none trains no robust arm"),
    (["--ssl-epochs", "-1"], "ssl-epochs must be >= 0"),
    (["--n", "400", "--ssl-epochs", "1", "--ssl-batch-size", "400"], "ssl-batch-size 400 is more than the about"),
    (["--arch", "seed_cnn", "--robust", "eac"], "robust eac needs class activation maps"),
    (["--robust", "glc"], "robust glc needs reviewed labels to estimate how labels go wrong"),
    (["--noise-model", "crowd"], "noise-model must be one of uniform, annotators or both, not 'crowd'"),
    (["--audit-share", "0.7"], "audit-share must be 0-0.5"),
    (["--queue-start", "ssl"], "queue-start ssl starts the out-of-fold models from the self-supervised pretraining: "
                               "give --ssl-epochs too"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, args, problem):
    with pytest.raises(CommandError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        call_command("bench_cleaning", *args, "--out", str(tmp_path / "bench"), "--inline")
    assert not (tmp_path / "bench").exists() and not Dataset.objects.exists() and not Job.objects.exists()


@pytest.mark.django_db
def test_without_a_worker_it_says_so_and_starts_nothing(tmp_path):
    with pytest.raises(CommandError, match="no worker is consuming") as failed:
        call_command("bench_cleaning", *TINY, "--out", str(tmp_path / "bench"))
    assert failed.value.returncode == 3
    assert not (tmp_path / "bench").exists() and not Job.objects.exists()


@pytest.mark.django_db
def test_an_existing_dataset_name_is_refused(tmp_path):
    from tests.factories import DatasetFactory

    DatasetFactory(name="taken")
    with pytest.raises(CommandError, match="dataset 'taken' exists already"):
        call_command("bench_cleaning", *TINY, "--out", str(tmp_path / "bench"), "--name", "taken", "--inline")
    assert not Job.objects.exists()


def test_an_unmigrated_database_is_named_with_the_command_that_fixes_it(tmp_path):
    # A fresh data folder, as a user who skipped `migrate` has: its own SQLite database, no tables yet.
    env = dict(os.environ, FER_DATA_DIR=str(tmp_path / "data"))
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "manage.py", "bench_cleaning", *TINY, "--out", str(tmp_path / "bench"),
                           "--inline"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "lacks" in done.stderr and "run `python manage.py migrate` first" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "bench").exists()


@pytest.mark.slow
@pytest.mark.worker
def test_with_a_worker_up_every_job_runs_on_it(start_worker, tmp_path):
    start_worker()
    out = tmp_path / "bench"
    # --robust none: the robust arms are the tiny run's (inline) to check; here, that every job reaches the worker.
    call_command("bench_cleaning", *TINY, "--robust", "none", "--out", str(out), "--name", "onworker",
                 stdout=io.StringIO(), stderr=io.StringIO())
    jobs = list(Job.objects.exclude(kind__endswith="_chunk"))
    assert len(jobs) == 16 and {j.status for j in jobs} == {Job.Status.SUCCEEDED}
    assert not [j.pk for j in jobs if j.worker.startswith("inline:")], "a job ran in the command's process"
    report = json.loads((out / "report.json").read_text())
    assert report["inline"] is False and report["runs"]["same_test_split"] and report["review_audit"]["ok"]


# ---------------------------------------------------------------------------------------------------------------
# Noise models side by side, and --faces: an existing folder in make_synthetic_faces' layout.

SMALL = ["--n", "240", "--size", "24", "--epochs", "1", "--folds", "2", "--gan-epochs", "1", "--gan-epochs-decay", "0",
         "--generate-failing", "--threshold", "1.0", "--robust", "none"]


@pytest.mark.slow
@pytest.mark.django_db
def test_both_noise_models_run_on_the_same_faces_and_are_reported_side_by_side(tmp_path, inline_jobs,
                                                                                 one_torch_thread):
    out = tmp_path / "bench"
    stdout = io.StringIO()
    call_command("bench_cleaning", *SMALL, "--noise-model", "both", "--audit-share", "0.5", "--out", str(out),
                 "--name", "nm", "--inline", stdout=stdout, stderr=io.StringIO())
    reports = {m: json.loads((out / m / "report.json").read_text()) for m in ("uniform", "annotators")}
    assert {m: r["plan"]["noise_model"] for m, r in reports.items()} == {"uniform": "uniform",
                                                                         "annotators": "annotators"}
    # The same faces (pixels, true labels, splits), the same number of wrong train + val labels, other wrong labels.
    images = {m: {i.path: (i.content_hash, i.split, i.original_label) for i in
                  Image.objects.filter(dataset__name=f"nm-{m}")} for m in reports}
    assert {p: v[:2] for p, v in images["uniform"].items()} == {p: v[:2] for p, v in images["annotators"].items()}
    truth = {m: read_truth(out / m / "faces" / "truth.csv") for m in reports}
    assert {p: t.label for p, t in truth["uniform"].items()} == {p: t.label for p, t in truth["annotators"].items()}
    assert reports["uniform"]["dataset"]["noisy_train_val"] == reports["annotators"]["dataset"]["noisy_train_val"]
    assert {p for p, t in truth["uniform"].items() if t.noisy} != {p for p, t in truth["annotators"].items() if t.noisy}
    annotators = reports["annotators"]["dataset"]["annotators"]
    assert reports["uniform"]["dataset"]["annotators"] is None and annotators["annotators"] == 3
    assert 0 < annotators["two_annotator_agreement"] < 1
    assert "noise model annotators (3 simulated annotators a face" in (out / "annotators" / "report.md").read_text()
    # Side by side: every signal's AUROC, AP and top-budget precision, the queue's precision and every arm's
    # accuracy, each the figure of its own model's report.
    c = json.loads((out / "comparison.json").read_text())
    assert c["models"] == ["uniform", "annotators"]
    for m, r in reports.items():
        for signal, per in r["detection"]["signals"].items():
            assert c["detection"][signal][m] == {"auroc": per["all"]["auroc"], "ap": per["all"]["ap"],
                                                 "precision_at_budget": r["detection"]["precision_at_budget"][signal]}
        assert c["queue"][m]["budget_precision"] == r["review"]["budget_precision"]
        assert {name: row[m]["accuracy"] for name, row in c["runs"].items()} == {
            name: row["accuracy"] for name, row in r["runs"]["runs"].items()}
        assert {d for d, per in c["gan_signals"].items() if m in per} >= {
            d["direction"] for d in r["gan_signals"]["directions"]}
    # The random audit took about half of the same budget's cards (drawn from any split; the queue's own cards are
    # the train split's), and its estimates are set beside the truth of each model's faces.
    for m, r in reports.items():
        decisions, audit = r["review_decisions"], r["audit"]
        dataset = Dataset.objects.get(name=f"nm-{m}")
        drawn = [d for d in decisions if d["audit"]]
        assert 0 < len(drawn) < len(decisions) == r["review"]["decisions"]
        assert r["review"]["audit_cards"] == len(drawn) == audit["audit_cards"]
        assert {d["image"] for d in drawn} == set(Image.objects.filter(dataset=dataset, audit=True)
                                                  .values_list("pk", flat=True))
        queue = [d for d in decisions if not d["audit"]]
        assert {d["split"] for d in queue} == {"train"}
        assert r["review"]["queue_precision"] == pytest.approx(sum(d["noisy"] for d in queue) / len(queue))
        assert audit["share_wrong"]["true"] == pytest.approx(
            sum(t.noisy for t in truth[m].values()) / len(truth[m]))
        assert audit["sample"] <= len(drawn) < audit["min_decisions"]  # too few for an interval, and it says so
        assert audit["share_wrong"]["estimate"] is None and not audit["share_wrong"]["covered"]
        text = (out / m / "report.md").read_text()
        assert "### The random audit against the truth (audit share 0.5)" in text
        assert f"not enough audit decisions yet ({audit['sample']} of 20)" in text
    md = (out / "comparison.md").read_text()
    assert "| signal | AUROC uniform | annotators | AP uniform |" in md and "| reviewed + augmented |" in md
    assert "side by side" in stdout.getvalue()


def _faces(tmp_path, n=30):
    from training.synthetic_faces import make_synthetic_faces

    make_synthetic_faces(tmp_path / "faces", n=n, size=16, seed=1)
    return tmp_path / "faces"


def _rewrite(path, keep):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for k, line in enumerate(lines) if keep(k, line)))


@pytest.mark.django_db
@pytest.mark.parametrize("breakage, problem", [
    (lambda f: (f / "labels.csv").unlink(), r"faces/labels.csv: no such file"),
    (lambda f: (f / "truth.csv").unlink(), r"faces/truth.csv: no such file"),
    (lambda f: (f / "images" / "00004.png").unlink(), r"faces/labels.csv line 6: images/00004.png is not an image in"),
    (lambda f: (f / "truth.csv").write_text((f / "truth.csv").read_text().replace("images/00002.png", "images/x.png")),
     r"faces/truth.csv line 4: images/x.png is not in labels.csv"),
    (lambda f: (f / "labels.csv").write_text((f / "labels.csv").read_text().replace("path,label", "file,label")),
     r"faces/labels.csv: the header needs the columns path, label; missing path"),
    (lambda f: _rewrite(f / "truth.csv", lambda k, line: k == 0), r"faces/truth.csv lists no image"),
])
def test_a_faces_folder_that_does_not_fit_is_refused_naming_the_file_and_row(tmp_path, breakage, problem):
    faces = _faces(tmp_path)
    breakage(faces)
    with pytest.raises(CommandError, match=problem):
        call_command("bench_cleaning", "--faces", str(faces), "--out", str(tmp_path / "bench"), "--inline")
    assert not (tmp_path / "bench").exists() and not Dataset.objects.exists() and not Job.objects.exists()


@pytest.mark.django_db
def test_faces_take_their_labels_from_the_folder_not_a_noise_model(tmp_path):
    faces = _faces(tmp_path)
    with pytest.raises(CommandError, match="--noise-model annotators does not apply with --faces"):
        call_command("bench_cleaning", "--faces", str(faces), "--noise-model", "annotators",
                     "--out", str(tmp_path / "bench"), "--inline")
    assert not (tmp_path / "bench").exists() and not Job.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_faces_folder_with_a_partial_truth_leaves_the_rest_out_and_says_how_many(tmp_path, inline_jobs,
                                                                                    one_torch_thread):
    from training.synthetic_faces import make_synthetic_faces

    faces = tmp_path / "mine"
    make_synthetic_faces(faces, n=240, size=24, seed=5, noise=0.2, difficulty=0.3, noise_model="annotators")
    # A verified subset: truth for every image but the first 60 rows (train, val and test among them).
    _rewrite(faces / "truth.csv", lambda k, line: k == 0 or k > 60)
    dropped = {line.split(",")[0] for line in (faces / "labels.csv").read_text().splitlines()[1:61]}
    before = {p.name: p.read_bytes() for p in faces.iterdir() if p.is_file()}
    out = tmp_path / "bench"
    args = [a for a in SMALL if a not in ("--n", "240")]
    call_command("bench_cleaning", *args, "--faces", str(faces), "--out", str(out), "--name", "mine", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    report = json.loads((out / "report.json").read_text())
    dataset = Dataset.objects.get(name="mine")
    assert Image.objects.filter(dataset=dataset).count() == 240 == report["dataset"]["n"]
    assert report["plan"]["faces"] == str(faces.resolve()) and not (out / "faces").exists()
    assert {p.name: p.read_bytes() for p in faces.iterdir() if p.is_file()} == before  # the folder is only read
    t = report["dataset"]["truth"]
    assert (t["with_truth"], t["without_truth"]) == (180, 60)
    train_known = Image.objects.filter(dataset=dataset, split="train").exclude(path__in=dropped)
    assert report["detection"]["train_images"] == train_known.count()
    assert all(per["all"]["n"] <= train_known.count() for per in report["detection"]["signals"].values())
    # The simulated reviewers decided only images with truth, skipping the others; the oracle left those alone.
    assert not {d["path"] for d in report["review_decisions"]} & dropped
    skipped = t["skipped_for_want_of_truth"]["review"]
    assert skipped > 0 and ReviewSkip.objects.filter(image__dataset=dataset, user__username__startswith="mine-reviewer-"
                                                     ).count() == skipped
    assert report["oracle"]["left_as_given"] == Image.objects.filter(dataset=dataset, split="train",
                                                                     path__in=dropped).count()
    assert "60 have no truth" in (out / "report.md").read_text()
