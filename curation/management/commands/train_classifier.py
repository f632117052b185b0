from curation.classifier.job import training_preview, validate_train_params
from curation.classifier.selection import DOUBTFUL
from curation.management.jobcommand import JobCommand
from curation.models import Run
from training.config import ROBUST_METHODS
from training.labels import CLASSES


class Command(JobCommand):
    help = "Train the emotion classifier on a dataset; evaluated on the dataset's frozen test split."
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
                                 "(hard bootstrapping)")
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--folds", type=int, help="K out-of-fold models for label-noise signals (0 = none)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--reduced", action="store_true", help="drop excluded and unconfirmed flagged images, apply relabels")
        parser.add_argument("--augmented", action="store_true", help="add generated images from train-split sources")
        parser.add_argument("--doubtful", choices=list(DOUBTFUL),
                            help="with --reduced, which unreviewed images are dropped: flagged by the SSIM rule "
                                 "(default, the published experiment's), by cleanlab, or by either")
        parser.add_argument("--init", metavar="PATH",
                            help="start from pretrained weights: a torch.save'd state dict below the import roots "
                                 "(e.g. torchvision's resnet18 weights), or run:ID for an earlier run's model; "
                                 "every tensor whose name and shape fit is taken, nothing is downloaded")
        parser.add_argument("--relabel-precision", type=float, metavar="P",
                            help="train unreviewed images on the classifier's suggested label in the lowest "
                                 "suspicion band where reviewers chose that suggestion at least this often (0-1]; "
                                 "a training target only, stored labels do not change")

    def job_params(self, options):
        keys = ("dataset", "arch", "size", "epochs", "batch_size", "lr", "folds", "seed", "doubtful", "monitor",
                "robust", "relabel_precision", "init")
        params = {k: options[k] for k in keys if options.get(k) is not None}
        params.update(reduced=options["reduced"], augmented=options["augmented"])
        return params

    def preview(self, params):
        """What the run will train on, rule by rule, before it is queued."""
        for line in training_preview(validate_train_params(params)):
            self.stderr.write(line)

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
    previous = (Run.objects.filter(dataset=run.dataset, status=Run.Status.SUCCEEDED, source=Run.Source.TRAINED,
                                   pk__lt=run.pk)
                .exclude(test_metrics=None).first())
    if previous:
        same = "same test split" if previous.test_split_hash == run.test_split_hash else "DIFFERENT test split"
        out(f"  vs run {previous.pk}: accuracy {m['accuracy'] - previous.test_metrics['accuracy']:+.4f}, "
            f"macro F1 {m['macro_f1'] - previous.test_metrics['macro_f1']:+.4f} ({same})")
    out("  per class      precision recall")
    for name, p, r in zip(CLASSES, m["precision"], m["recall"]):
        out(f"  {name:<12} {p:9.3f} {r:6.3f}")
    if run.folds:
        out(f"  out-of-fold probabilities ({run.folds} folds): {run.oof_file}")
    out(f"  plots: {', '.join(run.plots.values())}")
