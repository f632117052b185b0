"""CycleGAN settings and profiles, importable without torch (web processes validate job parameters with them)."""
from dataclasses import dataclass

from training.config import DictConfig


@dataclass
class GanConfig(DictConfig):
    size: int = 64
    ngf: int = 64  # generator width of the first layer
    ndf: int = 64  # discriminator width of the first layer
    n_blocks: int = 0  # residual blocks; 0 = the paper's rule: 6 up to 128 px, 9 above
    upsample: str = "deconv"  # generator upsampling: "deconv" (the paper's) or "resize" (see gan.networks)
    batch_size: int = 8
    epochs: int = 50  # epochs at the initial learning rate
    epochs_decay: int = 50  # epochs of linear decay to zero
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # times lambda_cycle
    pool_size: int = 50
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True
    compile: bool = False  # torch.compile the loss computations (GPU)

    KIND = "CycleGAN option"

    @property
    def blocks(self):
        return self.n_blocks or (6 if self.size <= 128 else 9)

    @property
    def total_epochs(self):
        return self.epochs + self.epochs_decay


# The CPU profile trains in minutes on two cores (demo, tests); the full one is the paper's networks for GPUs.
PROFILES = {
    "cpu": dict(ngf=16, ndf=16, n_blocks=3, batch_size=8, epochs=8, epochs_decay=8, size=64),
    "full": dict(ngf=64, ndf=64, n_blocks=0, batch_size=32, epochs=50, epochs_decay=50),
}


def make_config(profile="cpu", **overrides):
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    return GanConfig(**{**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}})
