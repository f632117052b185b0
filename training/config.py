"""Training configuration: one dataclass, stored with every run so it can be reproduced."""
from dataclasses import asdict, dataclass, fields


class DictConfig:
    """to_dict / from_dict for config dataclasses stored as JSON with runs; unknown keys are refused by name."""

    KIND = "option"  # how an error names a key

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.KIND}(s): {', '.join(sorted(unknown))}")
        return cls(**data)


# Noise-robust training methods (training/robust.py), named here so that validating a config imports no torch.
ROBUST_METHODS = ("none", "eac", "gce", "bootstrap", "elr", "dividemix", "glc")
EAC_ARCHS = ("small_cnn", "resnet18")  # archs whose last conv map feeds global pooling and one linear layer


# Early stopping on a val split whose labels are as noisy as the train split's: no epoch before min_epochs is kept
# or stops the run, and patience grows as the train split shrinks. Both in optimizer steps, so they scale with the
# train split's size (curation/classifier/handler.py uses them when a run has too few reviewed val images).
NOISY_MIN_STEPS = 400
NOISY_PATIENCE_STEPS = 200


def noisy_val_schedule(n_train, batch_size, epochs, patience=5):
    """(min_epochs, patience) for early stopping on a noisy val split: min_epochs = ceil(NOISY_MIN_STEPS / steps
    an epoch), at most half the epochs; patience = ceil(NOISY_PATIENCE_STEPS / steps an epoch), at least `patience`,
    at most the epochs."""
    import math

    steps = max(1, math.ceil(n_train / batch_size))
    return (min(epochs // 2, math.ceil(NOISY_MIN_STEPS / steps)),
            min(epochs, max(patience, math.ceil(NOISY_PATIENCE_STEPS / steps))))


# Defaults that fit the size (issue 39): a train split under SMALL_TRAIN_SPLIT images takes these values for the
# TrainConfig fields a run leaves unset (curation/classifier/handler.py; the run records which it took). Chosen by
# measurement at 3,000 faces (docs/results.md "Small datasets", benchmarks/small_set.py): a batch of 32 gives a
# small split's epoch twice the optimizer steps of a batch of 64 (four times 128's) at the same cost per epoch.
SMALL_TRAIN_SPLIT = 5000
SMALL_SPLIT_DEFAULTS = {"batch_size": 32}


def size_defaults(n_train):
    """{TrainConfig field: value} a train split of n_train images takes where a run leaves the field unset:
    SMALL_SPLIT_DEFAULTS under SMALL_TRAIN_SPLIT images, else nothing (TrainConfig's own defaults)."""
    return dict(SMALL_SPLIT_DEFAULTS) if n_train < SMALL_TRAIN_SPLIT else {}


# The classifier architectures training.models builds. Named here, not imported from there, so that validating a
# config (the web process does, when a job is started) never imports torch.
ARCH_NAMES = ("seed_cnn", "small_cnn", "resnet18")


def arch_size_problems(arch, size):
    """What is wrong with a network and image size pair (a list of sentences; empty when they fit): one rule for
    training and for self-supervised pretraining."""
    problems = []
    if arch not in ARCH_NAMES:
        problems.append(f"arch must be one of {', '.join(ARCH_NAMES)}, not {arch!r}")
    if not 16 <= size <= 256:
        problems.append(f"size must be 16-256 px, not {size}")
    elif arch == "seed_cnn" and size < 60:
        problems.append(f"seed_cnn's valid convolutions need at least 60 px, not {size} (use small_cnn or resnet18)")
    return problems


@dataclass
class TrainConfig(DictConfig):
    arch: str = "seed_cnn"  # one of ARCH_NAMES, built by training.models.ARCHITECTURES
    size: int = 64  # images are square, size x size RGB
    num_classes: int = 8
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, nesterov)
    lr: float = 2e-3  # peak learning rate of the one-cycle schedule
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # "onecycle" or "constant"
    label_smoothing: float = 0.05
    class_balance: str = "weights"  # "weights": balanced class weights in the loss; "none"
    augment: bool = True  # flip, small affine, colour jitter, on tensors, training batches only
    early_stopping_patience: int = 5  # epochs without a better validation figure before stopping; 0 disables
    # Epochs before this one are never kept and never stop the run: a validation split whose labels are as noisy as
    # the train split's can favour an early, under-trained epoch (curation/classifier/handler.py sets it by the size of
    # the train split when no reviewed validation images exist). 0: every epoch is a candidate.
    min_epochs: int = 0
    # The validation figure that picks the kept (best) epoch and drives early stopping: "val_acc" or "val_loss".
    # Accuracy by default: the val split carries the dataset's label noise, and the loss on its wrong labels grows
    # as a model grows confident in the true class, so by loss a run trained on cleaned labels is stopped early
    # and kept under-trained (by loss the benchmark's clean-label oracle kept epoch 5 of 16: 44 % instead of 78 %).
    monitor: str = "val_acc"
    # Noise-robust training (training/robust.py): "none" (cross-entropy), "eac" (erasing attention consistency;
    # small_cnn and resnet18), "gce" (generalized cross-entropy), "bootstrap" (hard bootstrapping; label_smoothing
    # applies to neither gce nor bootstrap), "elr" (early-learning regularization) or "dividemix" (two networks,
    # co-divided semi-supervised training: training/dividemix.py; no class weights or label smoothing after its
    # warm-up) or "glc" (Gold Loss Correction: forward correction through a corruption matrix estimated from trusted
    # labels, which engine.fit takes as `corruption`).
    robust: str = "none"
    eac_lambda: float = 5.0  # weight of EAC's attention-consistency term (the paper's 5)
    gce_q: float = 0.7  # GCE's q in (0, 1]: 0 would be cross-entropy, 1 the mean absolute error (the paper's 0.7)
    bootstrap_beta: float = 0.8  # hard bootstrapping's weight on the given label in (0, 1] (the paper's 0.8)
    elr_beta: float = 0.7  # ELR's running-target momentum in [0, 1) (the paper's 0.7)
    elr_lambda: float = 3.0  # weight of ELR's regulariser (the paper's 3 on CIFAR-10)
    dividemix_warmup: int = 10  # DivideMix: epochs of plain cross-entropy before the first division
    dividemix_lambda_u: float = 25.0  # weight of the unlabelled (consistency) term (the paper's 25 at 50 % noise)
    dividemix_threshold: float = 0.5  # clean probability above which an image is labelled (the paper's 0.5)
    # "co": each network trains on its peer's division (the paper's); "mean": both on the division of the mean of
    # the two networks' per-image losses.
    dividemix_split: str = "co"
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms; slower on GPU
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True
    num_threads: int = 0  # CPU threads for torch; 0 keeps torch's default

    KIND = "training option"

    def validate(self):
        problems = []
        problems += arch_size_problems(self.arch, self.size)
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, not {self.epochs}")
        if not 0 <= self.min_epochs <= max(self.epochs, 0):
            problems.append(f"min_epochs must be 0-{self.epochs} (the epochs), not {self.min_epochs}")
        if self.early_stopping_patience < 0:
            problems.append(f"patience must be >= 0, not {self.early_stopping_patience}")
        if self.batch_size < 2:
            problems.append(f"batch_size must be >= 2, not {self.batch_size}")
        if self.optimizer not in ("adamw", "sgd"):
            problems.append(f"optimizer must be adamw or sgd, not {self.optimizer!r}")
        if self.schedule not in ("onecycle", "constant"):
            problems.append(f"schedule must be onecycle or constant, not {self.schedule!r}")
        if self.class_balance not in ("weights", "none"):
            problems.append(f"class_balance must be weights or none, not {self.class_balance!r}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), not {self.label_smoothing}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, not {self.lr}")
        if self.monitor not in ("val_acc", "val_loss"):
            problems.append(f"monitor must be val_acc or val_loss, not {self.monitor!r}")
        if self.robust not in ROBUST_METHODS:
            problems.append(f"robust must be one of {', '.join(ROBUST_METHODS)}, not {self.robust!r}")
        elif self.robust == "eac" and self.arch not in EAC_ARCHS:
            problems.append(f"robust eac needs class activation maps, which {self.arch} has not (it flattens its "
                            f"last feature map into dense layers): use {' or '.join(EAC_ARCHS)}")
        if self.eac_lambda < 0:
            problems.append(f"eac_lambda must be >= 0, not {self.eac_lambda}")
        if not 0 < self.gce_q <= 1:
            problems.append(f"gce_q must be in (0, 1], not {self.gce_q}")
        if not 0 < self.bootstrap_beta <= 1:
            problems.append(f"bootstrap_beta must be in (0, 1], not {self.bootstrap_beta}")
        if not 0 <= self.elr_beta < 1:
            problems.append(f"elr_beta must be in [0, 1), not {self.elr_beta}")
        if self.elr_lambda < 0:
            problems.append(f"elr_lambda must be >= 0, not {self.elr_lambda}")
        if self.dividemix_warmup < 0:
            problems.append(f"dividemix_warmup must be >= 0, not {self.dividemix_warmup}")
        if self.dividemix_lambda_u < 0:
            problems.append(f"dividemix_lambda_u must be >= 0, not {self.dividemix_lambda_u}")
        if not 0 < self.dividemix_threshold < 1:
            problems.append(f"dividemix_threshold must be in (0, 1), not {self.dividemix_threshold}")
        if self.dividemix_split not in ("co", "mean"):
            problems.append(f"dividemix_split must be co or mean, not {self.dividemix_split!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
