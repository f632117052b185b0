"""Training throughput: the real data pipeline (uint8 tensor cache on the device, slicing, augmentation, the
training step) against the model-only ceiling (the same model and step fed a random float batch already in
memory), both measured in this run. Prints images/second; asserts nothing.

    python -m benchmarks.train_speed --arch resnet18 --size 64 --batch-size 512
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from training.config import TrainConfig
from training.engine import _autocast, _make_optimizer, train_one_epoch
from training.placement import pick_device, to_device_u8
from training.models import build_model


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ceiling(cfg, device, steps, warmup):
    model = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device).to(memory_format=torch.channels_last)
    opt, _ = _make_optimizer(model, cfg, steps)
    x = torch.rand(cfg.batch_size, 3, cfg.size, cfg.size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=device)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with _autocast(device, cfg.amp):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def pipeline(cfg, device, steps, warmup):
    n = steps * cfg.batch_size + 1
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, cfg.size, cfg.size, 3), dtype=np.uint8)
    x = to_device_u8(images, device)
    y = torch.as_tensor(rng.integers(0, cfg.num_classes, n), device=device)
    model = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device).to(memory_format=torch.channels_last)
    opt, sched = _make_optimizer(model, cfg, steps)
    gen = torch.Generator(device=device).manual_seed(0)
    warm = max(2, warmup) * cfg.batch_size + 1
    train_one_epoch(model, opt, None, x[:warm], y[:warm], cfg=cfg, device=device, generator=gen, loss_weight=None)
    _sync(device)
    t0 = time.perf_counter()
    train_one_epoch(model, opt, None, x, y, cfg=cfg, device=device, generator=gen, loss_weight=None)
    _sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-augment", action="store_true")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    cfg = TrainConfig(arch=args.arch, size=args.size, batch_size=args.batch_size, augment=not args.no_augment)
    roof = ceiling(cfg, device, args.steps, args.warmup)
    real = pipeline(cfg, device, args.steps, args.warmup)
    amp = "bf16 autocast, " if device.type == "cuda" else ""
    print(f"{name}: {cfg.arch} {cfg.size} px, batch {cfg.batch_size}, {amp}channels_last, augment={cfg.augment}")
    print(f"  model-only ceiling: {roof:10.0f} images/s")
    print(f"  data pipeline:      {real:10.0f} images/s  (overhead {100 * (roof / real - 1):.1f}% over the ceiling)")
    return roof, real


if __name__ == "__main__":
    main()
