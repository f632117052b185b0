"""What a benchmark run does: one dataclass, filled from a profile and the command's options, validated before
anything is written."""
from dataclasses import asdict, dataclass, field, fields

from curation.classifier.selection import DOUBTFUL
from curation.review.audit import audit_share_check
from training.config import EAC_ARCHS, ROBUST_METHODS
from training.synthetic_faces import NOISE_MODELS

# The confusable pairs of training/synthetic_faces.py (PARTNER): four CycleGANs give every class a generator that
# starts at it, and each generator maps a class to the one its wrong labels most often name.
PAIRS = (("happy", "contempt"), ("sad", "neutral"), ("surprise", "fear"), ("disgust", "anger"))

PROFILES = {
    # 2-core CPU: 8,000 faces; a 25 % test split (2,000 faces) measures runs to about +-1 point. Difficulty 0.3:
    # at the generator's default (0.6) the small CPU classifier reaches only 36-42 % (30 % out of fold), far below
    # any real FER model, so the benchmark would measure the CPU's weak classifier rather than the cleaning; at
    # 0.3 it reaches 64 % on noisy labels, near real models on AffectNet's 8 classes. 16 epochs: at 10 the
    # out-of-fold models (two thirds of the train split) reached only 52 % on the true labels and cleanlab's AUROC
    # 0.76; 20 epochs gave 68 % and 0.83 but would take the run to 29 minutes. Both cores (threads 0): one thread
    # took 31 minutes for what two do in 16. 2+2 CycleGAN epochs at 32 px.
    "cpu": dict(n=8000, size=48, gan_size=32, test_fraction=0.25, arch="small_cnn", epochs=16, folds=3,
                batch_size=64, gan_profile="cpu", gan_epochs=2, gan_epochs_decay=2, threads=0, difficulty=0.3),
    # One GPU: more faces, the product's full-size networks and the paper's CycleGAN, on the harder default faces.
    "full": dict(n=16000, size=64, gan_size=64, test_fraction=0.15, arch="resnet18", epochs=30, folds=5,
                 batch_size=128, gan_profile="full", gan_epochs=20, gan_epochs_decay=20, threads=0, difficulty=0.6),
}


QUEUE_STARTS = ("scratch", "ssl")


class PlanError(ValueError):
    """A benchmark option is out of range; the message names it."""


@dataclass
class BenchPlan:
    name: str  # the dataset the benchmark imports; must not exist yet
    profile: str = "cpu"
    n: int = 8000  # synthetic faces, all splits
    noise: float = 0.2  # share of wrong labels in train + val (the test split has none)
    seed: int = 0
    difficulty: float = 0.6  # make_synthetic_faces --difficulty (the profiles set their own)
    size: int = 48  # px of the faces and the classifier
    gan_size: int = 32  # px of the CycleGANs (and so of their SSIMs): their cost grows with the pixels
    test_fraction: float = 0.15  # of the faces; a larger test split measures the runs with less sampling noise
    arch: str = "small_cnn"
    epochs: int = 10
    folds: int = 3  # out-of-fold models of the baseline (cleanlab's input)
    # Classifier runs per retrain, one a seed: a run's accuracy moves by about a point from seed to seed, as much
    # as some effects measured, so the report gives the mean and spread over the seeds.
    seeds: int = 1
    batch_size: int = 64
    gan_profile: str = "cpu"
    gan_epochs: int = 1
    gan_epochs_decay: int = 1
    pairs: list = field(default_factory=lambda: [list(p) for p in PAIRS])
    threshold: float = 0.85  # the SSIM flag threshold (the published rule)
    budget: float = 0.1  # decisions the reviewers make, as a share of the train split
    reviewer_error: float = 0.1  # probability that a simulated decision is wrong
    reviewers: int = 2  # simulated reviewer accounts taking turns on the queue
    # Which unreviewed images the reviewed runs drop (retrain --doubtful): ssim, classifier or either.
    doubtful: str = "ssim"
    generate_share: float = 0.25  # generated images for the augmented run, as a share of the train split
    # The augmented run also takes images from generators that failed their quality check (generate_images
    # --include-failing); by default those generate nothing, and with none passing the augmented run is skipped.
    generate_failing: bool = False
    # torch threads of an --inline run (0: torch's default, one a core). Give 1 on a shared machine, where OpenMP
    # threads spin against other people's work; workers keep their own setting.
    threads: int = 0
    # The noise-robust training methods (training/robust.py) of the robust arms, comma-separated ("eac" or
    # "elr,dividemix"): for each, robust alone (no review), reviewed + robust and the oracle + robust. "none" trains
    # none of them. Each costs three runs a seed (DivideMix's divided epochs about 14 plain ones each), so the default
    # profile trains one.
    robust: str = "eac"
    # The self-supervised start (issue 31): SimCLR epochs of one pretrain_ssl job on the dataset's train and val
    # images, right after the import (labels unread, so every arm can share it), and the arms trained again from it:
    # the plain classifier on the noisy labels, and each robust method's three arms. 0 (the default): none.
    ssl_epochs: int = 0
    ssl_batch_size: int = 128  # the pretraining's images a step (each seen as two views)
    # Where the out-of-fold models that feed the queue start: "scratch" (the default, so that earlier figures stay
    # comparable), or "ssl", the self-supervised start (needs ssl_epochs), as the product's train_classifier starts
    # once a pretraining exists. With "ssl" the out-of-fold job's own run is the first seed of the SSL start's arm and
    # the baseline trains every seed from scratch without folds, so no run is added; the review rounds' refits start
    # there too.
    queue_start: str = "scratch"
    # Review rounds: the budget spent in this many parts; before each part after the first, the out-of-fold models
    # are refitted on the labels as reviewed so far and the queue rescored, so the next part starts from a better
    # ranking.
    rounds: int = 1
    # Optional arm: reviewed + robust + calibrated relabels at this precision target (curation/classifier/
    # relabels.py); None trains no such arm.
    relabel_precision: float = None
    # How the synthetic faces' wrong labels are chosen (training/synthetic_faces.py): uniform, or annotators who
    # read each face's expression. The command's "both" runs one plan of each on the same faces.
    noise_model: str = "uniform"
    # An existing folder in make_synthetic_faces' layout (labels.csv, truth.csv, the images) to run on instead of
    # making faces: n, noise, difficulty and noise_model then describe nothing (labels.csv has the labels).
    faces: str = None
    # The random audit (curation/review/audit.py) within the same budget: this share of the cards the simulated
    # reviewers are served are random audit draws, and the report sets the audit's estimates beside the truth. 0 (the
    # default, so that figures stay comparable with earlier runs): the reviewers take the train split's queue alone.
    audit_share: float = 0.0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_options(cls, *, name, profile, **options):
        if profile not in PROFILES:
            raise PlanError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
        known = {f.name for f in fields(cls)}
        values = {**PROFILES[profile], **{k: v for k, v in options.items() if v is not None and k in known}}
        return cls(name=name, profile=profile, **values).validate()

    def validate(self):
        problems = []
        if not 0 <= self.difficulty <= 1:
            problems.append(f"difficulty must be in [0, 1], not {self.difficulty}")
        if self.n < 200:
            problems.append(f"n must be at least 200 (25 faces a class), not {self.n}")
        if not 0 < self.noise < 0.5:
            problems.append(f"noise must be in (0, 0.5), not {self.noise}")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, not {self.seed}")
        if not 0 < self.budget <= 1:
            problems.append(f"budget must be in (0, 1] (a share of the train split), not {self.budget}")
        if not 0 <= self.reviewer_error <= 1:
            problems.append(f"reviewer-error must be in [0, 1], not {self.reviewer_error}")
        if self.reviewers < 1:
            problems.append(f"reviewers must be at least 1, not {self.reviewers}")
        if not 16 <= self.size <= 256:
            problems.append(f"size must be 16-256 px, not {self.size}")
        if not 32 <= self.gan_size <= 256 or self.gan_size % 4:
            problems.append(f"gan-size must be a multiple of 4 in 32-256, not {self.gan_size}")
        if not 0.05 <= self.test_fraction <= 0.4:
            problems.append(f"test-fraction must be in [0.05, 0.4], not {self.test_fraction}")
        if self.epochs < 1 or self.gan_epochs < 1 or self.gan_epochs_decay < 0:
            problems.append("epochs and gan-epochs must be >= 1, gan-epochs-decay >= 0")
        if not 1 <= self.seeds <= 10:
            problems.append(f"seeds must be 1-10 (classifier runs per retrain), not {self.seeds}")
        if self.folds < 2:
            problems.append(f"folds must be at least 2 (the baseline's out-of-fold probabilities), not {self.folds}")
        if not 0 < self.generate_share <= 2:
            problems.append(f"generate-share must be in (0, 2], not {self.generate_share}")
        if self.doubtful not in DOUBTFUL:
            problems.append(f"doubtful must be one of {', '.join(DOUBTFUL)}, not {self.doubtful!r}")
        methods = [m.strip() for m in str(self.robust).split(",")]
        for method in methods:
            if method not in ROBUST_METHODS:
                problems.append(f"robust must be one of {', '.join(ROBUST_METHODS)} (or several, comma-separated), "
                                f"not {method!r}")
            elif method == "glc":
                problems.append("robust glc needs reviewed labels to estimate how labels go wrong, and the "
                                "robust-alone arm has none: the benchmark does not run it "
                                "(benchmarks/robust_regime.py measures it)")
            elif method == "eac" and self.arch not in EAC_ARCHS:
                problems.append(f"robust eac needs class activation maps: arch must be one of {', '.join(EAC_ARCHS)}, "
                                f"not {self.arch!r} (or give --robust gce, bootstrap, elr, dividemix or none)")
        if len(methods) > 1 and "none" in methods:
            problems.append(f"robust none trains no robust arm, so it cannot be listed with others: {self.robust!r}")
        if len(set(methods)) < len(methods):
            problems.append(f"robust names a method twice: {self.robust!r}")
        self.robust = ",".join(methods)
        if self.ssl_epochs < 0:
            problems.append(f"ssl-epochs must be >= 0 (0: no self-supervised start), not {self.ssl_epochs}")
        elif self.ssl_epochs and self.ssl_batch_size < 2:
            problems.append(f"ssl-batch-size must be >= 2 (a contrastive batch needs other images), not "
                            f"{self.ssl_batch_size}")
        elif self.ssl_epochs and self.n - round(self.n * self.test_fraction) < self.ssl_batch_size:
            problems.append(f"ssl-batch-size {self.ssl_batch_size} is more than the about "
                            f"{self.n - round(self.n * self.test_fraction)} images outside the test split: "
                            f"contrastive pretraining needs a full batch; give a smaller --ssl-batch-size")
        if self.queue_start not in QUEUE_STARTS:
            problems.append(f"queue-start must be one of {', '.join(QUEUE_STARTS)}, not {self.queue_start!r}")
        elif self.queue_start == "ssl" and not self.ssl_epochs:
            problems.append("queue-start ssl starts the out-of-fold models from the self-supervised pretraining: "
                            "give --ssl-epochs too")
        if self.relabel_precision is not None and not 0 < self.relabel_precision <= 1:
            problems.append(f"relabel-precision must be in (0, 1], not {self.relabel_precision}")
        if not 1 <= self.rounds <= 10:
            problems.append(f"rounds must be 1-10 (parts of the review budget), not {self.rounds}")
        if self.noise_model not in NOISE_MODELS:
            problems.append(f"noise-model must be one of {', '.join(NOISE_MODELS)} (or both), not {self.noise_model!r}")
        try:
            self.audit_share = audit_share_check(self.audit_share)
        except ValueError as exc:
            problems.append(str(exc).replace("audit share", "audit-share", 1))
        if self.threads < 0:
            problems.append(f"threads must be >= 0 (0: torch's default), not {self.threads}")
        if problems:
            raise PlanError("; ".join(problems))
        return self

    @property
    def robust_methods(self):
        """The robust methods of the robust arms, in the order given; none for "none"."""
        return [m for m in self.robust.split(",") if m != "none"]

    def pretrain_params(self):
        return {"dataset": self.name, "arch": self.arch, "size": self.size, "epochs": self.ssl_epochs,
                "batch_size": self.ssl_batch_size, "seed": self.seed}

    def classifier_params(self, **switches):
        return {"dataset": self.name, "arch": self.arch, "size": self.size, "epochs": self.epochs,
                "batch_size": self.batch_size, "seed": self.seed, "folds": 0, "reduced": False, "augmented": False,
                "doubtful": "ssim", **switches}

    def cyclegan_params(self, pair):
        return {"dataset": self.name, "pair": list(pair), "profile": self.gan_profile, "epochs": self.gan_epochs,
                "epochs_decay": self.gan_epochs_decay, "size": self.gan_size, "seed": self.seed}
