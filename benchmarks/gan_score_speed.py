"""Scoring throughput in images/second: our pipeline (generator and SSIM on the same device, batched) against the
published experiment's (batched generator, then skimage's SSIM image by image on the CPU), on the same images and
generator in this run. Prints figures; asserts nothing.

    python -m benchmarks.gan_score_speed --profile full --size 128 --blocks 9 --n 4096
"""
import argparse
import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

from gan.cyclegan import make_config, to_u8, to_unit
from gan.networks import ResnetGenerator, init_weights
from gan.scoring import transform_ssim


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def published(net, images, batch_size, device):
    """Generator in batches on the device, then one skimage SSIM per image on the CPU (grey, uniform window)."""
    w = np.array([0.299, 0.587, 0.114])
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2)
            y = to_u8(net(to_unit(x))).permute(0, 2, 3, 1).cpu().numpy()
            for a, b in zip(images[start : start + batch_size], y):
                out.append(structural_similarity(a @ w, b @ w, data_range=255))
    return np.array(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["cpu", "full"])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = make_config(args.profile, size=args.size, n_blocks=args.blocks)
    net = ResnetGenerator(cfg.ngf, cfg.blocks, upsample=cfg.upsample).to(device).eval()
    net.apply(init_weights)
    images = np.random.default_rng(0).integers(0, 256, (args.n, cfg.size, cfg.size, 3), dtype=np.uint8)
    transform_ssim(net, images[: args.batch_size], batch_size=args.batch_size)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    ours = transform_ssim(net, images, batch_size=args.batch_size)
    _sync(device)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = published(net, images, args.batch_size, device)
    t_ref = time.perf_counter() - t0
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}: {args.profile} generator ({cfg.blocks} blocks, ngf {cfg.ngf}) at {cfg.size} px, {args.n} images")
    print(f"  published (generator, then skimage SSIM per image): {args.n / t_ref:8.0f} images/s")
    print(f"  ours (generator + SSIM on {device.type}):             {args.n / t_ours:8.0f} images/s "
          f"({t_ref / t_ours:.1f}x); max |difference| {np.abs(ours - ref).max():.1e}")


if __name__ == "__main__":
    main()
