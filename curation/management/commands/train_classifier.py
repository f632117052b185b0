import math

from django.core.management.base import CommandError

from curation.classifier.collapse import collapse_warning
from curation.classifier.loss_cause import loss_cause
from curation.classifier.params import training_preview, validate_train_params, with_default_start
from curation.classifier.predictions import read_probabilities, run_predictions_path
from curation.classifier.seeds import check_seeds, group_summary, group_words
from curation.classifier.selection import DOUBTFUL
from curation.jobs.errors import JobParamsError
from curation.jobs.runner import job_run, worker_label
from curation.jobs.services import seed_jobs_enqueue
from curation.management.jobcommand import JobCommand
from curation.models import Job, Run
from training.config import ROBUST_METHODS
from training.labels import CLASSES
from training.significance import paired_test


class Command(JobCommand):
    help = ("Train the emotion classifier on a dataset; evaluated on the dataset's frozen test split. It starts from "
            "the dataset's newest self-supervised pretraining (pretrain_ssl) that fits the classifier, unless --init "
            "says otherwise (--init scratch: a random start).")
    job_kind = "train_classifier"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--arch", choices=["seed_cnn", "resnet18", "small_cnn"], help="default seed_cnn")
        parser.add_argument("--size", type=int, help="image size in px (default 64)")
        parser.add_argument("--epochs", type=int, help="maximum epochs (default 30; early stopping: --monitor)")
        parser.add_argument("--monitor", choices=["val_acc", "val_loss"],
                            help="validation figure that picks the kept epoch and stops early (default val_acc: "
                                 "the loss on noisy val labels stops clean-label runs too early)")
        parser.add_argument("--robust", choices=list(ROBUST_METHODS),
                            help="noise-robust training: none (cross-entropy, the default), eac (erasing attention "
                                 "consistency; small_cnn or resnet18), gce (generalized cross-entropy), bootstrap "
                                 "(hard bootstrapping), elr (early-learning regularization), dividemix (two "
                                 "networks, co-divided semi-supervised training; several times slower), glc (Gold "
                                 "Loss Correction: corrects the loss by how reviewed labels say labels go wrong; needs "
                                 "reviewed train images and a run with --folds)")
        parser.add_argument("--batch-size", type=int,
                            help="default 128, or 32 for a train split under 5,000 images (docs/results.md)")
        parser.add_argument("--lr", type=float)
        parser.add_argument("--folds", type=int, help="K out-of-fold models for label-noise signals (0 = none)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--seeds", type=int, metavar="K",
                            help="train K runs (seed, seed+1, ...) as one run group and report their mean, spread "
                                 "and worst run (1-20); worth it below about 5,000 train images")
        parser.add_argument("--patience", type=int,
                            help="epochs without a better validation figure before stopping (0: never stop early); "
                                 "default: 5 on reviewed val images, more on a noisy val split of a small dataset")
        parser.add_argument("--min-epochs", type=int,
                            help="no epoch before this one is kept or stops the run; default: 0 on reviewed val "
                                 "images, else set by the train split's size (at most half the epochs)")
        parser.add_argument("--reduced", action="store_true", help="drop excluded and unconfirmed flagged images, apply relabels")
        parser.add_argument("--augmented", action="store_true", help="add generated images from train-split sources")
        parser.add_argument("--doubtful", choices=list(DOUBTFUL),
                            help="with --reduced, which unreviewed images are dropped: flagged by the SSIM rule "
                                 "(default, the published experiment's), by cleanlab, or by either")
        parser.add_argument("--init", metavar="PATH",
                            help="start from pretrained weights: a torch.save'd state dict below the import roots "
                                 "(e.g. torchvision's resnet18 weights), run:ID for an earlier run's model, or "
                                 "ssl:ID for the backbone a pretrain_ssl job saved; every tensor whose name and "
                                 "shape fit is taken, nothing is downloaded. Default: the dataset's newest "
                                 "pretrain_ssl that fits the classifier, else a random start; scratch: a random "
                                 "start")
        parser.add_argument("--relabel-precision", type=float, metavar="P",
                            help="train unreviewed images on the classifier's suggested label in the lowest "
                                 "suspicion band where reviewers chose that suggestion at least this often (0-1]; "
                                 "a training target only, stored labels do not change")

    def job_params(self, options):
        keys = ("dataset", "arch", "size", "epochs", "batch_size", "lr", "folds", "seed", "doubtful", "monitor",
                "robust", "relabel_precision", "init", "patience", "min_epochs")
        params = {k: options[k] for k in keys if options.get(k) is not None}
        params.update(reduced=options["reduced"], augmented=options["augmented"])
        return self.with_defaults(params)

    def with_defaults(self, params):
        """A run names its start: the dataset's newest self-supervised pretraining that fits, else a random one."""
        return with_default_start(params)

    def preview(self, params):
        """What the run will train on, rule by rule, before it is queued."""
        for line in training_preview(validate_train_params(params)):
            self.stderr.write(line)

    def handle(self, *args, **options):
        if options.get("seeds") is None:
            return super().handle(*args, **options)
        try:
            check_seeds(options["seeds"])
            params = self.job_params(options)
            self.preview(params)
            jobs = seed_jobs_enqueue(params, options["seeds"], send=not options["inline"])
        except JobParamsError as exc:
            raise CommandError(str(exc)) from None
        if options["no_wait"]:
            self.stdout.write(" ".join(str(job.pk) for job in jobs))
            return
        failed = []
        for job in jobs:
            if options["inline"]:
                self.stderr.write(f"job {job.pk} ({job.kind}, seed {job.params['seed']}) running in this process")
                job_run(job_id=job.pk, worker=worker_label("inline:"))
                job.refresh_from_db()
            else:
                job = self.wait(job)
            self.report(job)
            if job.status != Job.Status.SUCCEEDED:
                failed.append(f"job {job.pk} {job.status}")
        summary = group_summary(jobs[0].params["group"]) if jobs[0].params["group"] else None
        if summary:
            self.stdout.write(f"seeds: {group_words(summary)}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(jobs)} seed runs did not succeed: {', '.join(failed)}")

    def report(self, job):
        if not job.result:
            return
        run = Run.objects.get(pk=job.result["run"])
        print_run(self.stdout.write, run)


def print_run(out, run):
    m = run.test_metrics
    kind = "+".join(k for k, on in (("reduced", run.reduced), ("augmented", run.augmented)) if on) or "baseline"
    robust = run.config.get("robust", "none")
    arch = run.arch if robust == "none" else f"{run.arch}, robust {robust}"
    out(f"run {run.pk} ({kind}, {arch}) on {run.dataset.name}: best epoch {run.best_epoch}, "
        f"trained on {run.selection['train']} images (snapshot {run.snapshot_hash[:12]})")
    out(f"  test accuracy {m['accuracy']:.4f}   macro F1 {m['macro_f1']:.4f}   on {run.selection['test']} test images")
    previous = (Run.objects.filter(pk=run.derived_from_id).exclude(test_metrics=None).first()
                if run.derived_from_id else None)
    how = "the run it derives from"
    if previous is None:
        previous = (Run.objects.filter(dataset=run.dataset, status=Run.Status.SUCCEEDED,
                                            source=Run.Source.TRAINED, pk__lt=run.pk)
                    .exclude(test_metrics=None).first())
        how = "the latest finished run before it"
    if previous:
        same = "same test split" if previous.test_split_hash == run.test_split_hash else "DIFFERENT test split"
        out(f"  vs run {previous.pk} ({how}): accuracy {m['accuracy'] - previous.test_metrics['accuracy']:+.4f}, "
            f"macro F1 {m['macro_f1'] - previous.test_metrics['macro_f1']:+.4f} ({same})")
        out(f"    {paired_words(previous, run)}")
        starts = [((r.selection or {}).get("init") or {}).get("from") for r in (previous, run)]
        if starts[0] != starts[1]:  # a retrain takes the dataset's pretraining by itself: the delta holds both
            out(f"    the two start differently: run {previous.pk} from {starts[0] or 'a random start'}, this run "
                f"from {starts[1] or 'a random start'}")
        cause = loss_cause(previous, run) if _significant_loss(previous, run) else None
        if cause:
            out(f"    most likely cause of the loss: {cause['text']}")
    out("  per class      precision recall")
    for name, p, r in zip(CLASSES, m["precision"], m["recall"]):
        out(f"  {name:<12} {p:9.3f} {r:6.3f}")
    if run.folds:
        out(f"  out-of-fold probabilities ({run.folds} folds): {run.oof_file}")
    out(f"  plots: {', '.join(run.plots.values())}")
    size_defaults = run.selection.get("size_defaults")
    if size_defaults:
        out(f"  defaults for the size: {size_defaults['why']}")
    validation = run.selection.get("validation")
    if validation:
        out(f"  validation: {validation_words(validation)}")
    glc = run.selection.get("glc")
    if glc:
        pooled = ", ".join(CLASSES[k] for k in glc["fallback"]) or "none"
        diagonal = sum(row[k] for k, row in enumerate(glc["matrix"])) / len(glc["matrix"])
        out(f"  glc: corruption matrix from {glc['images']} reviewed train images "
            f"({'the random audit' if glc['from'] == 'audit' else 'every reviewed image'}) and run {glc['run']}'s "
            f"out-of-fold probabilities; mean diagonal {diagonal:.3f}; "
            f"pooled rows (fewer than {glc['min_per_class']} images): {pooled}")
    collapse = collapse_warning(run)
    if collapse:
        out(f"  WARNING: {collapse['text']}")


def validation_words(validation):
    """What a run's selection["validation"] says, in one line."""
    on = "reviewed val images" if validation["on"] == "reviewed" else "the noisy val split"
    return (f"early stopping and the kept epoch on {on} ({validation['images']} images), min epochs "
            f"{validation['min_epochs']}, patience {validation['patience']}")


def _significant_loss(base, run):
    """Whether run's test accuracy is below base's by McNemar's exact test (p < 0.05) on their shared test images."""
    read = [read_probabilities(run_predictions_path(r)) for r in (base, run)]
    if None in read:
        return False
    (ids0, labels0, probs0), (ids1, labels1, probs1) = read
    test = paired_test((ids0, labels0, probs0.argmax(1)), (ids1, labels1, probs1.argmax(1)))
    return test.n > 0 and test.significant and test.b > test.c


def paired_words(base, run):
    """The accuracy delta's paired test on the test images both runs predicted, in words: McNemar's exact p-value
    and a 95 % interval of the paired difference (Wald, from the discordant pairs)."""
    read = [read_probabilities(run_predictions_path(r)) for r in (base, run)]
    if None in read:
        return "no paired test: a run kept no per-image test predictions"
    (ids0, labels0, probs0), (ids1, labels1, probs1) = read
    test = paired_test((ids0, labels0, probs0.argmax(1)), (ids1, labels1, probs1.argmax(1)))
    if test.n == 0:
        return "no paired test: the runs share no test images"
    delta = (test.c - test.b) / test.n
    half = 1.96 * math.sqrt(max(test.b + test.c - (test.c - test.b) ** 2 / test.n, 0.0)) / test.n
    verdict = "a real difference" if test.significant else "within the noise"
    return (f"paired test on {test.n} test images: accuracy {delta:+.4f} (95 % CI {delta - half:+.4f} to "
            f"{delta + half:+.4f}), McNemar exact p={test.p:.3g} (b={test.b} only run {base.pk} right, c={test.c} "
            f"only run {run.pk} right): {verdict}")
