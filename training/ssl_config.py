"""Self-supervised pretraining's configuration (training/ssl.py): a dataclass stored with the job, validated
without torch so that a web process can check a job's parameters."""
from dataclasses import dataclass

from training.config import DictConfig, TrainConfig, arch_size_problems

_TRAIN = TrainConfig()
SSL_METHOD_NAMES = {"simclr": "SimCLR", "vicreg": "VICReg"}  # method -> its name as printed
SSL_METHODS = tuple(SSL_METHOD_NAMES)


@dataclass
class SSLConfig(DictConfig):
    method: str = "simclr"  # SSL_METHODS: training/ssl.py
    arch: str = _TRAIN.arch  # the classifier whose backbone is pretrained (training.models); --init needs the same
    size: int = _TRAIN.size
    epochs: int = 20
    batch_size: int = _TRAIN.batch_size  # images a step; each gives two views, so 2 x batch_size pass the network
    lr: float = 2e-3  # AdamW, cosine decay to 0 over the run
    weight_decay: float = 1e-4
    temperature: float = 0.2  # NT-Xent's temperature (SimCLR)
    projection_dim: int = 64  # SimCLR's projection head's output, dropped after pretraining
    seed: int = 0
    channels_last: bool = True
    num_threads: int = 0  # CPU threads for torch; 0 keeps torch's default

    KIND = "pretraining option"

    def validate(self):
        problems = []
        if self.method not in SSL_METHODS:
            problems.append(f"method must be one of {', '.join(SSL_METHODS)}, not {self.method!r}")
        problems += arch_size_problems(self.arch, self.size)
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, not {self.epochs}")
        if self.batch_size < 2:
            problems.append(f"batch_size must be >= 2 (a contrastive batch needs other images), not "
                            f"{self.batch_size}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, not {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, not {self.weight_decay}")
        if self.temperature <= 0:
            problems.append(f"temperature must be > 0, not {self.temperature}")
        if self.projection_dim < 1:
            problems.append(f"projection_dim must be >= 1, not {self.projection_dim}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
