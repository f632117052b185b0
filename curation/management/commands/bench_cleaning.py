"""`manage.py bench_cleaning`: what cleaning buys, measured against known truth on one test split."""
import time
from dataclasses import fields, replace
from pathlib import Path

from django.core.management.base import CommandError

from curation.cleaning_bench.compare import write_comparison
from curation.cleaning_bench.faces import read_faces
from curation.cleaning_bench.pipeline import BenchError, bench_cleaning
from curation.cleaning_bench.plan import PROFILES, QUEUE_STARTS, BenchPlan, PlanError
from curation.models import Dataset
from training.synthetic_faces import NOISE_MODELS
from curation.cleaning_bench.stages import NoWorker, StageFailed, check_workers
from curation.classifier.selection import DOUBTFUL
from curation.management.migrated import DatabaseCommand

NO_WORKER_EXIT = 3
PLAN_OPTIONS = {f.name for f in fields(BenchPlan)} - {"name", "profile", "pairs"}


class Command(DatabaseCommand):
    help = ("The cleaning benchmark: synthetic faces with known label noise, the whole pipeline (classifier with "
            "out-of-fold probabilities, a CycleGAN per confusable pair, scores), simulated reviewers on the queue, "
            "and five retrains on the same test split (baseline, reduced, reviewed, reviewed + augmented, oracle); "
            "writes DIR/report.json, DIR/report.md and plots.")

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="folder for the report, its plots and the synthetic faces")
        parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                            help="cpu: sized for under 30 minutes on 2 cores; full: a GPU")
        parser.add_argument("--name", help="dataset name to import as (default: bench-<UTC time>); must be new")
        parser.add_argument("--n", type=int, help="synthetic faces (profile default)")
        parser.add_argument("--noise", type=float, default=0.2, help="share of wrong train+val labels (0.2)")
        parser.add_argument("--noise-model",
                            help=f"how the synthetic faces' wrong labels are chosen: {', '.join(NOISE_MODELS)}, or both "
                                 "(the whole benchmark under each, on the same faces: DIR/<model>/report.md and "
                                 "DIR/comparison.md side by side); uniform by default")
        parser.add_argument("--faces",
                            help="run on an existing folder in make_synthetic_faces' layout instead of making faces: "
                                 "FACES/labels.csv the labels to import, FACES/truth.csv the truth (it may cover part "
                                 "of the images; the others are left out of the truth-based figures)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--difficulty", type=float,
                            help="make_synthetic_faces --difficulty (profile default: cpu 0.3, full 0.6)")
        parser.add_argument("--size", type=int, help="px of the faces and the classifier (profile default)")
        parser.add_argument("--gan-size", type=int, help="px of the CycleGANs (profile default)")
        parser.add_argument("--test-fraction", type=float, help="share of faces in the test split (profile default)")
        parser.add_argument("--arch", choices=["seed_cnn", "resnet18", "small_cnn"])
        parser.add_argument("--epochs", type=int, help="classifier epochs (profile default)")
        parser.add_argument("--folds", type=int, help="out-of-fold models of the baseline (profile default)")
        parser.add_argument("--seeds", type=int,
                            help="classifier runs per retrain, one a seed; the report gives their mean and spread "
                                 "(profile default)")
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--gan-epochs", type=int, help="CycleGAN epochs at the full learning rate")
        parser.add_argument("--gan-epochs-decay", type=int, help="CycleGAN epochs of linear decay")
        parser.add_argument("--threshold", type=float, help="SSIM flag threshold (0.85)")
        parser.add_argument("--doubtful", choices=list(DOUBTFUL),
                            help="unreviewed images the reviewed runs drop (retrain --doubtful; profile default)")
        parser.add_argument("--budget", type=float, default=0.1, help="review budget as a share of train (0.1)")
        parser.add_argument("--reviewer-error", type=float, default=0.1,
                            help="probability that a simulated decision is wrong (0.1)")
        parser.add_argument("--generate-share", type=float,
                            help="generated images for the augmented run, as a share of train (0.25)")
        parser.add_argument("--generate-failing", action="store_true", default=None,
                            help="the augmented run also takes images from generators that failed their quality "
                                 "check (generate_images --include-failing)")
        parser.add_argument("--threads", type=int,
                            help="torch threads of an --inline run (0, the default: one a core; 1 on a shared machine)")
        parser.add_argument("--robust",
                            help="noise-robust methods of the robust arms (robust alone, reviewed + robust, oracle + "
                                 "robust for each), comma-separated: eac (the default), gce, bootstrap, elr, "
                                 "dividemix, e.g. elr,dividemix; or none to train no robust arm (not glc: the "
                                 "robust-alone arm has no reviewed labels to estimate it from)")
        parser.add_argument("--ssl-epochs", type=int,
                            help="also pretrain the classifier's backbone without labels (pretrain_ssl, SimCLR) for "
                                 "this many epochs, once, and train the plain classifier and every robust arm again "
                                 "from it (0, the default: no self-supervised start)")
        parser.add_argument("--ssl-batch-size", type=int, help="images a pretraining step (128)")
        parser.add_argument("--queue-start", choices=QUEUE_STARTS,
                            help="where the out-of-fold models that feed the review queue start: scratch (the "
                                 "default) or ssl, the self-supervised pretraining (needs --ssl-epochs); the "
                                 "baseline stays a random start either way")
        parser.add_argument("--relabel-precision", type=float,
                            help="also train reviewed + robust + calibrated relabels at this precision target (0-1]")
        parser.add_argument("--audit-share", type=float, metavar="S",
                            help="share of the cards served that are random audit draws, within the same budget "
                                 "(0-0.5, the product's default is 0.05; 0, the default here: no audit); the report "
                                 "sets the audit's estimates beside the truth")
        parser.add_argument("--rounds", type=int,
                            help="spend the review budget in this many rounds, refitting the out-of-fold models on "
                                 "the reviewed labels and rescoring the queue between them (1, the default: one pass)")
        parser.add_argument("--inline", action="store_true",
                            help="run every job in this process (same Job rows) instead of on a worker")

    def handle(self, *args, **o):
        name = o["name"] or time.strftime("bench-%Y%m%d-%H%M%S", time.gmtime())
        model = o["noise_model"]
        try:
            if model is not None and model not in (*NOISE_MODELS, "both"):
                raise PlanError(f"noise-model must be one of {', '.join(NOISE_MODELS)} or both, not {model!r}")
            if o["faces"] and model is not None:
                raise PlanError(f"--noise-model {model} does not apply with --faces: the labels are those of "
                                f"{o['faces']}/labels.csv")
            models = list(NOISE_MODELS) if model == "both" else [model or "uniform"]
            options = {k: o.get(k) for k in PLAN_OPTIONS if o.get(k) is not None and k != "noise_model"}
            if o["faces"]:
                faces = read_faces(o["faces"])  # refused here, naming the file and its row, before anything is made
                options.update(faces=str(Path(o["faces"]).resolve()), n=len(faces.labels))
            # Options named as the plan's fields; those left out take the profile's value. One plan a noise model.
            plan = BenchPlan.from_options(name=name, profile=o["profile"], noise_model=models[0], **options)
            plans = {m: replace(plan, name=f"{name}-{m}" if len(models) > 1 else name, noise_model=m).validate()
                     for m in models}
            taken = [p.name for p in plans.values() if Dataset.objects.filter(name=p.name).exists()]
            if taken:
                raise PlanError(f"dataset {taken[0]!r} exists already; give the benchmark a new --name")
            if not o["inline"]:
                check_workers()
        except PlanError as exc:
            raise CommandError(str(exc)) from None
        except NoWorker as exc:
            raise CommandError(str(exc), returncode=NO_WORKER_EXIT) from None
        say = self.stderr.write
        where = "in this process" if o["inline"] else "on workers"
        reports = {}
        for m, p in plans.items():
            out_dir = Path(o["out"]) / m if len(plans) > 1 else Path(o["out"])
            source = f"faces from {p.faces}" if p.faces else f"{p.n} faces at {p.size} px, noise model {m}"
            say(f"bench_cleaning: dataset {p.name}, {source}, jobs {where}")
            try:
                report = bench_cleaning(p, out_dir=out_dir, inline=o["inline"], say=say)
            except (BenchError, StageFailed) as exc:
                raise CommandError(str(exc)) from None
            if len(plans) > 1:
                self.stdout.write(f"== noise model {m}")
            self.summary(report, out_dir)
            reports[m] = {**report, "report_dir": str(out_dir)}
        if len(plans) > 1:
            write_comparison(reports, o["out"])
            self.stdout.write(f"side by side: {o['out']}/comparison.md, {o['out']}/comparison.json")

    def summary(self, r, out_dir):
        out = self.stdout.write
        for name, per in r["detection"]["signals"].items():
            a = per.get("all") or {}
            out(f"detection  {name:<34} AUROC {a.get('auroc', float('nan')):.3f}  AP {a.get('ap', float('nan')):.3f}")
        rv = r["review"]
        audit = "ok" if r["review_audit"]["ok"] else "MISMATCH"
        out(f"review     {rv['decisions']} decisions, budget precision {rv['budget_precision'] or 0:.3f}, "
            f"fixed {rv['labels_fixed']}, broken {rv['labels_broken']}, audit {audit}")
        for name, row in r["runs"]["runs"].items():
            gap = row["gap_recovered_accuracy"]
            spread = f" +-{row['accuracy_std']:.4f}" if row.get("accuracy_std") is not None else ""
            out(f"run        {name:<32} acc {row['accuracy']:.4f}{spread} ({row['delta_accuracy']:+.4f})  "
                f"macro F1 {row['macro_f1']:.4f} ({row['delta_macro_f1']:+.4f})"
                + "  gap recovered " + ("n/a (oracle = baseline)" if gap is None else f"{gap:.0%}"))
        best = r["goals"].get("best_automatic_recovers_half") or {}
        if best.get("run"):
            gap = best["gap_recovered_accuracy"]
            out(f"best automatic run: {best['run']}, gap recovered " + ("n/a" if gap is None else f"{gap:.0%}"))
        for q in r["gan_quality"]:
            out(f"gan        {q['direction']:<18} target class: sources {q['target_rate_sources'] or 0:.3f}, "
                f"generated {q['target_rate_outputs'] or 0:.3f}")
        for name, why in r.get("runs_skipped", {}).items():
            out(f"run        {name:<32} not run: {why}")
        out(f"total {r['timings']['total']:.0f} s; report: {out_dir}/report.json, {out_dir}/report.md")
