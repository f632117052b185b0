"""CycleGAN between two emotions (Zhu et al. 2017, "Unpaired Image-to-Image Translation ...").

Names follow junyanz/pytorch-CycleGAN-and-pix2pix, mapped to the paper:
    G_A = G   : A -> B        (e.g. happy -> sad)
    G_B = F   : B -> A
    D_A = D_Y : tells real B images from G_A(A)
    D_B = D_X : tells real A images from G_B(B)
Losses (paper eq. 1-3 and section 5.2), least-squares GAN (LSGAN, Mao et al. 2017):
    loss_G_A   = E[(D_A(G_A(a)) - 1)^2]                       adversarial, eq. 1 with the LSGAN objective
    loss_G_B   = E[(D_B(G_B(b)) - 1)^2]
    loss_cycle = lambda_cycle * (|G_B(G_A(a)) - a|_1 + |G_A(G_B(b)) - b|_1)                  eq. 2, lambda = 10
    loss_idt   = lambda_identity * lambda_cycle * (|G_A(b) - b|_1 + |G_B(a) - a|_1)           section 5.2, 0.5
    loss_D_A   = 0.5 * (E[(D_A(b) - 1)^2] + E[D_A(pool_B(G_A(a)))^2]); loss_D_B likewise
Discriminators see a history of 50 generated images (Shrivastava et al. 2017); Adam, lr 2e-4, beta1 0.5;
the learning rate is constant for `epochs`, then decays linearly to zero over `epochs_decay`.
The identity loss is what makes the published ambiguity idea work: G_A learns to leave B-looking faces alone,
so an image labelled A that really shows B is barely changed by G_A.
"""
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

from gan.config import PROFILES, GanConfig, make_config  # noqa: F401 (re-exported)
from gan.networks import PatchDiscriminator, ResnetGenerator, init_weights


class ImagePool:
    """History of generated images: each new image is returned as is, or (with probability 1/2, once the pool
    is full) swapped for a stored one, which the new image replaces."""

    def __init__(self, size, generator):
        self.size, self.images, self.generator = size, [], generator

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                k = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[k])
                self.images[k] = image
            else:
                out.append(image)
        return torch.stack(out)


def to_unit(batch_u8):
    """(B, 3, S, S) uint8 -> float in [-1, 1]."""
    return batch_u8.float().div_(127.5).sub_(1)


def to_u8(x):
    """(B, 3, S, S) float in [-1, 1] -> uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


class CycleGAN:
    def __init__(self, cfg: GanConfig, device):
        self.cfg, self.device = cfg, torch.device(device)
        torch.manual_seed(cfg.seed)
        mf = torch.channels_last if cfg.channels_last else torch.contiguous_format

        def build(net):
            net.apply(init_weights)
            return net.to(self.device, memory_format=mf)

        self.G_A = build(ResnetGenerator(cfg.ngf, cfg.blocks, upsample=cfg.upsample))
        self.G_B = build(ResnetGenerator(cfg.ngf, cfg.blocks, upsample=cfg.upsample))
        self.D_A = build(PatchDiscriminator(cfg.ndf))
        self.D_B = build(PatchDiscriminator(cfg.ndf))
        betas = (cfg.beta1, 0.999)
        self.opt_G = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), cfg.lr, betas=betas)

        def linear_decay(epoch):  # epoch counts from 0; the rate multiplier for the next epoch
            return 1.0 - max(0, epoch + 1 - cfg.epochs) / float(cfg.epochs_decay + 1)

        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, linear_decay)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, linear_decay)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.pool_A, self.pool_B = ImagePool(cfg.pool_size, self.rng), ImagePool(cfg.pool_size, self.rng)
        self.epoch = 0
        self.history = []
        self._g_losses = torch.compile(self.generator_losses) if cfg.compile else self.generator_losses
        self._d_loss = torch.compile(self.discriminator_loss) if cfg.compile else self.discriminator_loss

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cfg.amp and self.device.type == "cuda")

    def generator_losses(self, real_A, real_B):
        cfg = self.cfg
        fake_B = self.G_A(real_A)  # G(a)
        fake_A = self.G_B(real_B)  # F(b)
        rec_A = self.G_B(fake_B)  # F(G(a))
        rec_B = self.G_A(fake_A)  # G(F(b))
        pred_B, pred_A = self.D_A(fake_B).float(), self.D_B(fake_A).float()
        loss_G_A = F.mse_loss(pred_B, torch.ones_like(pred_B))
        loss_G_B = F.mse_loss(pred_A, torch.ones_like(pred_A))
        loss_cycle = cfg.lambda_cycle * (F.l1_loss(rec_A.float(), real_A) + F.l1_loss(rec_B.float(), real_B))
        loss_idt = torch.zeros((), device=real_A.device)
        if cfg.lambda_identity > 0:
            loss_idt = cfg.lambda_identity * cfg.lambda_cycle * (
                F.l1_loss(self.G_A(real_B).float(), real_B) + F.l1_loss(self.G_B(real_A).float(), real_A))
        total = loss_G_A + loss_G_B + loss_cycle + loss_idt
        return total, fake_A.detach(), fake_B.detach(), torch.stack([loss_G_A, loss_G_B, loss_cycle, loss_idt])

    @staticmethod
    def discriminator_loss(D, real, fake):
        pred_real, pred_fake = D(real).float(), D(fake).float()
        return 0.5 * (F.mse_loss(pred_real, torch.ones_like(pred_real)) + F.mse_loss(pred_fake, torch.zeros_like(pred_fake)))

    def set_requires_grad(self, nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    def train_step(self, real_A, real_B):
        """One optimisation step of both generators, then both discriminators. real_*: float in [-1, 1].
        Returns the losses as a detached tensor [G_A, G_B, cycle, idt, D_A, D_B] (no device sync)."""
        self.set_requires_grad([self.D_A, self.D_B], False)
        with self._autocast():
            loss_G, fake_A, fake_B, parts = self._g_losses(real_A, real_B)
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        self.set_requires_grad([self.D_A, self.D_B], True)
        pooled_B, pooled_A = self.pool_B.query(fake_B), self.pool_A.query(fake_A)
        with self._autocast():
            loss_D_A = self._d_loss(self.D_A, real_B, pooled_B)
            loss_D_B = self._d_loss(self.D_B, real_A, pooled_A)
        self.opt_D.zero_grad(set_to_none=True)
        (loss_D_A + loss_D_B).backward()
        self.opt_D.step()
        return torch.cat([parts.detach().float(), torch.stack([loss_D_A, loss_D_B]).detach().float()])

    def train_epoch(self, A_u8, B_u8, *, on_step=None):
        """One epoch over (N, 3, S, S) uint8 tensors on the device, or caches placed by training.placement.place_images:
        max(len A, len B) images of each domain in a seeded random order, random horizontal flips. Returns the
        epoch's mean losses as a dict."""
        bs = self.cfg.batch_size
        steps = max(1, math.ceil(max(len(A_u8), len(B_u8)) / bs))
        order_A = _cycled_order(len(A_u8), steps * bs, self.rng).to(self.device)
        order_B = _cycled_order(len(B_u8), steps * bs, self.rng).to(self.device)
        mf = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        total = torch.zeros(6, device=self.device)
        bounds = [(step * bs, (step + 1) * bs) for step in range(steps)]
        pairs = zip(_batches(A_u8, order_A, bounds), _batches(B_u8, order_B, bounds))
        for step, (batch_A, batch_B) in enumerate(pairs):
            real_A = _flip(to_unit(batch_A), self.rng).contiguous(memory_format=mf)
            real_B = _flip(to_unit(batch_B), self.rng).contiguous(memory_format=mf)
            total += self.train_step(real_A, real_B)
            if on_step is not None:
                on_step(step + 1, steps)
        self.sched_G.step()
        self.sched_D.step()
        self.epoch += 1
        names = ("G_A", "G_B", "cycle", "idt", "D_A", "D_B")
        losses = dict(zip(names, (total / steps).tolist()))
        losses.update(epoch=self.epoch, lr=self.opt_G.param_groups[0]["lr"])
        self.history.append(losses)
        return losses

    @torch.no_grad()
    def translate(self, images_u8, direction="AB", batch_size=64):
        """(N, 3, S, S) uint8 tensor -> uint8 tensor of the same shape, through G_A ("AB") or G_B ("BA")."""
        net = self.G_A if direction == "AB" else self.G_B
        return translate(net, images_u8, batch_size=batch_size, amp=self.cfg.amp)

    def state_dict(self):
        return {
            "G_A": self.G_A.state_dict(), "G_B": self.G_B.state_dict(), "D_A": self.D_A.state_dict(),
            "D_B": self.D_B.state_dict(), "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(), "epoch": self.epoch,
            "history": self.history, "config": self.cfg.to_dict(), "rng": self.rng.get_state(),
            "pool_A": _pool_tensor(self.pool_A), "pool_B": _pool_tensor(self.pool_B),
        }

    def load_state_dict(self, state):
        for name in ("G_A", "G_B", "D_A", "D_B", "opt_G", "opt_D", "sched_G", "sched_D"):
            getattr(self, name).load_state_dict(state[name])
        self.epoch, self.history = state["epoch"], list(state["history"])
        self.rng.set_state(state["rng"])
        self.pool_A.images = [t.to(self.device) for t in state["pool_A"]]
        self.pool_B.images = [t.to(self.device) for t in state["pool_B"]]


@torch.no_grad()
def translate(net, images_u8, *, batch_size=64, amp=True):
    net.eval()
    device = next(net.parameters()).device
    out = []
    for start in range(0, len(images_u8), batch_size):
        x = to_unit(images_u8[start : start + batch_size].to(device))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out.append(to_u8(net(x)))
    net.train()
    return torch.cat(out) if out else images_u8.new_empty(images_u8.shape)


def _batches(images, order, bounds):
    """Rows order[a:b] of images for (a, b) in bounds: a device tensor indexed there, or a placed cache
    (training.placement.DeviceImages / StreamedImages) that streams them with the next batch's copy overlapped."""
    if hasattr(images, "batches"):
        return images.batches(order, bounds)
    return (images[order[a:b]] for a, b in bounds)


def _cycled_order(n, length, rng):
    reps = math.ceil(length / n)
    return torch.cat([torch.randperm(n, generator=rng) for _ in range(reps)])[:length]


def _flip(x, rng):
    flip = (torch.rand(x.shape[0], generator=rng) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def _pool_tensor(pool):
    return [t.detach().cpu() for t in pool.images]


def sample_grid(model, A_u8, B_u8):
    """A picture of what the pair does, as uint8 (H, W, 3): rows a, G_A(a), G_B(G_A(a)), b, G_B(b), G_A(G_B(b));
    one column per sample."""
    fake_B = model.translate(A_u8, "AB")
    rec_A = model.translate(fake_B, "BA")
    fake_A = model.translate(B_u8, "BA")
    rec_B = model.translate(fake_A, "AB")
    rows = [torch.cat(list(r.cpu()), dim=2) for r in (A_u8.cpu(), fake_B, rec_A, B_u8.cpu(), fake_A, rec_B)]
    return np.ascontiguousarray(torch.cat(rows, dim=1).permute(1, 2, 0).numpy())
