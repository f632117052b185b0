"""The cleaning benchmark, stage by stage: synthetic data with known noise, the product's pipeline on it, simulated
review (and its ceiling, on a perfect queue), the retrains on one test split, and the report.

Order matters: the baseline (with out-of-fold probabilities) comes before the CycleGANs, whose quality instrument
judges them with the dataset's latest classifier; the reduced run without review comes before any decision; the
oracle relabels the train split last, so nothing after it sees true labels.
"""
import os
import platform
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from curation.cleaning_bench import measure, reviewers
from curation.cleaning_bench.faces import read_faces
from curation.cleaning_bench.gan_signals import measure_gan_signals
from curation.cleaning_bench.measure import (CEILING, ORACLE, SSL_ALONE, SSL_CEILING, SSL_ORACLE, SSL_REVIEWED,
                                             arm_name, robust_arms, run_names)
from curation.cleaning_bench.report import write_report
from curation.cleaning_bench.stages import run_stage
from curation.models import Dataset, GeneratedImage, Image
from curation.review.audit import audit_draws_seed, dataset_audit_share_set
from curation.selectors import dataset_get
from training.labels import CLASSES
from training.synthetic_faces import make_synthetic_faces


# What make_synthetic_faces says about its simulated annotators (the annotator noise model), kept in the report.
ANNOTATOR_FIGURES = ("annotators", "perception_sigma", "one_annotator_accuracy", "two_annotator_agreement",
                     "agreement_with_plurality", "neutral_error", "error_by_intensity", "votes_by_true_class")


class BenchError(RuntimeError):
    """The benchmark cannot start or a stage failed; the message says which."""


def cpu():
    """The CPU's model name as Linux reports it (/proc/cpuinfo; None where there is none) and the kernels torch
    picked for it. The same command repeats to the last digit on one machine but not across CPU models (other
    kernels sum in other orders, and training from scratch carries the difference on), so the report names both."""
    import torch
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        model = None
    return {"cpu_model": model, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def bench_cleaning(plan, *, out_dir, inline, say):
    """Run the whole benchmark described by `plan`; returns the report dict (also written under out_dir)."""
    if Dataset.objects.filter(name=plan.name).exists():
        raise BenchError(f"dataset {plan.name!r} exists already; give the benchmark a new --name")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if inline and plan.threads:
        import torch  # the command's own process trains: a management command, never a web process

        torch.set_num_threads(plan.threads)
    timings, started = {}, time.monotonic()
    load_before = os.getloadavg()

    def stage(name, fn):
        t0 = time.monotonic()
        say(f"[{time.monotonic() - started:6.0f} s] {name}")
        value = fn()
        timings[name] = timings.get(name, 0.0) + time.monotonic() - t0
        return value

    def job(kind, params):
        return run_stage(kind, params, inline=inline, say=say)

    def train(stage_name, first=0, **switches):
        """One classifier run a seed (from the `first`), all on the database as it is now; returns their run ids."""
        return stage(stage_name, lambda: [
            job("train_classifier", plan.classifier_params(seed=plan.seed + k, **switches)).result["run"]
            for k in range(first, plan.seeds)])

    def train_robust(review, **switches):
        """Each robust method's arm of this review (from scratch, and from the self-supervised start when there
        is one) into runs; each arm its own stage, so that the report times every arm."""
        for method in plan.robust_methods:
            for init in starts:
                name = arm_name(review, method, ssl=bool(init))
                runs[name] = train(f"retrain: {name}", robust=method, **({"init": init} if init else {}),
                                   **switches)

    if plan.faces:  # someone else's folder: read, never written
        faces = Path(plan.faces).resolve()
        summary = {"noise_model": None, "source": str(faces)}
    else:
        faces = out / "faces"
        shutil.rmtree(faces, ignore_errors=True)
        summary = stage("synthetic faces", lambda: make_synthetic_faces(
            faces, n=plan.n, size=plan.size, noise=plan.noise, seed=plan.seed, difficulty=plan.difficulty,
            test_fraction=plan.test_fraction, noise_model=plan.noise_model))
    loaded = read_faces(faces)
    truth = loaded.truth  # only the images truth.csv lists: the others are left out of every truth-based figure
    # The benchmark wrote these faces itself, wherever --out says: that folder is an import root for this import.
    with override_settings(FER_IMPORT_ROOTS=[*settings.FER_IMPORT_ROOTS, faces]):
        stage("import", lambda: job("import_dataset", {"path": str(faces / "labels.csv"), "format": "csv",
                                                       "name": plan.name}))
    dataset = dataset_get(name=plan.name)
    dataset_audit_share_set(dataset_id=dataset.pk, audit_share=plan.audit_share)
    dataset.refresh_from_db()
    audit_draws_seed(plan.seed)  # which cards are audit cards: the same for the same seed
    splits = {s: Image.objects.filter(dataset=dataset, split=s).count() for s in ("train", "val", "test")}
    runs = {}
    starts = [None]  # the robust arms' starts: from scratch, and the pretraining's weights (init ssl:ID)
    if plan.ssl_epochs:  # reads no label, so it can come first and serve every arm
        pretrained = stage("self-supervised pretraining", lambda: job("pretrain_ssl", plan.pretrain_params()))
        starts.append(f"ssl:{pretrained.pk}")
    # The out-of-fold models cleanlab reads, with the first seed's run of their start: the baseline's (a random
    # start), or with --queue-start ssl the SSL start's, the baseline then training every seed without folds.
    queue_init = {"init": starts[1]} if plan.queue_start == "ssl" else {}
    base = stage("out-of-fold models (the queue's)" if queue_init else "baseline classifier (out-of-fold)",
                 lambda: job("train_classifier", plan.classifier_params(folds=plan.folds, **queue_init)))
    if queue_init:
        runs[SSL_ALONE] = [base.result["run"]]
        runs["baseline"] = train("baseline classifier")
    else:
        runs["baseline"] = [base.result["run"]]
        if plan.seeds > 1:
            runs["baseline"] += train("baseline classifier: other seeds", first=1)
    for a, b in plan.pairs:
        stage("CycleGANs", lambda: job("train_cyclegan", plan.cyclegan_params((a, b))))
    stage("scoring", lambda: job("score_ambiguity", {"dataset": plan.name, "threshold": plan.threshold}))
    budget = max(1, round(plan.budget * splits["train"]))
    detection = measure.detection(dataset, truth, budget=budget)
    # Scores the classifier reads in G(x), beyond SSIM: measured here, before any review changes a label.
    gan_signals = stage("GAN signals beyond SSIM", lambda: measure_gan_signals(
        dataset, {path: t.noisy for path, t in truth.items()}))
    same_as = {}
    if Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, flagged=True).exists():
        runs["reduced (SSIM flags, no review)"] = train("retrain: reduced", reduced=True, doubtful="ssim")
    else:  # nothing to drop: it would train on the baseline's images with the baseline's seeds, so it is the baseline
        same_as["reduced (SSIM flags, no review)"] = "baseline"
        say("reduced (SSIM flags): no image reached the threshold, so it is the baseline; not trained again")
    runs["reduced (cleanlab flags, no review)"] = train("retrain: reduced", reduced=True, doubtful="classifier")
    if plan.ssl_epochs:
        done = runs.get(SSL_ALONE, [])  # the out-of-fold job's run, when the queue's models started there
        if len(done) < plan.seeds:
            runs[SSL_ALONE] = done + train(f"retrain: {SSL_ALONE}", first=len(done), init=starts[1])
    train_robust("alone")  # the published methods' setting: every noisy label, nobody reviews

    # The review ceiling: the same reviewers, budget and error draws on a perfect queue (wrong labels first), its
    # retrain, then its decisions taken back, so that the product's queue is reviewed from the same labels.
    ceiling_users = reviewers.bench_users(f"{plan.name}-ceiling", plan.reviewers)
    passed_over = {"review ceiling": [], "review": []}  # images passed over for want of truth
    ceiling = stage("review ceiling: perfect queue", lambda: reviewers.simulate_review(
        dataset=dataset, truth=truth, budget=budget, error_rate=plan.reviewer_error, seed=plan.seed,
        users=ceiling_users, queue=reviewers.perfect_queue(dataset, truth), skipped=passed_over["review ceiling"]))
    runs[CEILING] = train("retrain: review ceiling", reduced=True, doubtful=plan.doubtful)
    if plan.ssl_epochs:  # the bound of review on top of the start: the same labels, from it
        runs[SSL_CEILING] = train(f"retrain: {SSL_CEILING}", init=starts[1], reduced=True, doubtful=plan.doubtful)
    ceiling_undo = stage("review ceiling: undo", lambda: reviewers.undo_decisions(ceiling))
    if not ceiling_undo["ok"]:
        raise BenchError(f"the review ceiling's decisions were not all taken back: {ceiling_undo}")

    users = reviewers.bench_users(f"{plan.name}-reviewer", plan.reviewers)
    decisions, rounds = [], []
    for r in range(plan.rounds):  # the budget in equal parts; one part is the whole budget at once
        part = budget * (r + 1) // plan.rounds - budget * r // plan.rounds
        refit = None
        if r:  # the out-of-fold models again, on the labels as reviewed so far, then the queue rescored
            refit = stage("review rounds: refit out-of-fold models", lambda: job(
                "train_classifier", plan.classifier_params(folds=plan.folds, reduced=True, doubtful="none",
                                                           **queue_init)))
            refit = refit.result["run"]
            stage("review rounds: rescore", lambda: job("score_ambiguity", {"dataset": plan.name,
                                                                            "threshold": plan.threshold}))
        got = stage("simulated review", lambda: reviewers.simulate_review(
            dataset=dataset, truth=truth, budget=part, error_rate=plan.reviewer_error, seed=plan.seed, users=users,
            offset=len(decisions), skipped=passed_over["review"]))
        decisions += got
        rounds.append({"round": r + 1, "refit_run": refit, **measure.review_summary(got, detection["noisy"])})
    audit = reviewers.audit_decisions(decisions, users, dataset)
    audit_vs_truth = measure.audit_against_truth(dataset, truth) if plan.audit_share else None
    review = measure.review_summary(decisions, detection["noisy"])
    runs["reviewed"] = train("retrain: reviewed", reduced=True, doubtful=plan.doubtful)
    if plan.ssl_epochs:  # review on top of the self-supervised start: the reviewed images and labels, from it
        runs[SSL_REVIEWED] = train(f"retrain: {SSL_REVIEWED}", init=starts[1], reduced=True, doubtful=plan.doubtful)
    # The same images and labels as the reviewed run, trained with each robust method.
    train_robust("reviewed", reduced=True, doubtful=plan.doubtful)
    if plan.relabel_precision is not None:
        method = (plan.robust_methods or ["none"])[0]
        name = arm_name("relabels", method)
        runs[name] = train(f"retrain: {name} at {plan.relabel_precision}", reduced=True, doubtful=plan.doubtful,
                           robust=method, relabel_precision=plan.relabel_precision)

    per_direction = max(1, round(plan.generate_share * splits["train"] / (2 * len(plan.pairs))))
    skipped = {}
    for a, b in plan.pairs:
        stage("generate images", lambda: job("generate_images", {
            "dataset": plan.name, "pair": [a, b], "n": per_direction, "seed": plan.seed,
            "include_failing": plan.generate_failing}))
    if GeneratedImage.objects.filter(gan__dataset=dataset).exists():
        runs["reviewed + augmented"] = train("retrain: reviewed + augmented", reduced=True, augmented=True,
                                             doubtful=plan.doubtful)
    else:
        skipped["reviewed + augmented"] = ("no generator passed its quality check, so none generated images "
                                           "(--generate-failing uses them anyway)")
        say(f"skipped reviewed + augmented: {skipped['reviewed + augmented']}")

    oracle_user = get_user_model().objects.get_or_create(username=f"{plan.name}-oracle")[0]
    oracle = stage("oracle relabel", lambda: reviewers.oracle_relabel(dataset=dataset, truth=truth, user=oracle_user))
    runs[ORACLE] = train("retrain: oracle", reduced=True)
    if plan.ssl_epochs:
        runs[SSL_ORACLE] = train(f"retrain: {SSL_ORACLE}", init=starts[1], reduced=True)
    train_robust("oracle", reduced=True)

    table = measure.runs_table(runs, same_as, order=run_names(plan))
    if not table["same_test_split"]:
        raise BenchError(f"the runs were not scored on the same test split: "
                         f"{ {n: r['test_split_hash'][:12] for n, r in table['runs'].items()} }")
    timings["total"] = time.monotonic() - started
    report = {
        "plan": plan.to_dict(),
        "dataset": {"name": plan.name, "n": len(loaded.labels), **splits, "noisy_train_val": sum(
                        t.noisy for p, t in truth.items() if loaded.labels[p][1] != "test"),
                    "faces": str(faces), "classes": list(CLASSES), "noise_model": summary.get("noise_model"),
                    "annotators": {k: summary[k] for k in ANNOTATOR_FIGURES if k in summary} or None,
                    "truth": {**loaded.summary(), "skipped_for_want_of_truth": {
                        k: len(v) for k, v in passed_over.items()}}},
        "timings": timings,
        "detection": detection,
        "review": review,
        "review_audit": audit,
        "audit": audit_vs_truth,
        "review_ceiling": {**measure.review_summary(ceiling, detection["noisy"]), "undo": ceiling_undo},
        "review_decisions": decisions,
        "review_rounds": rounds,
        "oracle": oracle,
        "runs": table,
        "runs_skipped": skipped,
        "gan_quality": measure.gan_quality(dataset),
        "gan_signals": gan_signals,
        "goals": measure.goals(detection, table, robust_arms(plan)),
        "inline": inline,
        # The figures depend on the machine and on what else ran on it: the 1-minute load average says how busy.
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), **cpu(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "torch_threads": plan.threads if inline else "worker's own"},
    }
    write_report(report, out)
    return report
