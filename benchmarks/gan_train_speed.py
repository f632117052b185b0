"""CycleGAN training-step throughput (both generators, both discriminators) in image pairs per second: our step
(bf16 autocast and channels_last on CUDA, optionally torch.compile of the loss computations) against the plain
eager float32 version of the same networks, both measured in this run. Prints figures; asserts nothing.

    python -m benchmarks.gan_train_speed --profile full --size 128 --blocks 9 --batch-size 32 --compile
"""
import argparse
import time

import torch

from gan.cyclegan import CycleGAN, make_config


def pairs_per_second(cfg, device, steps, warmup):
    model = CycleGAN(cfg, device)
    g = torch.Generator(device=device).manual_seed(0)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    a = (torch.rand(cfg.batch_size, 3, cfg.size, cfg.size, device=device, generator=g) * 2 - 1).contiguous(memory_format=mf)
    b = (torch.rand(cfg.batch_size, 3, cfg.size, cfg.size, device=device, generator=g) * 2 - 1).contiguous(memory_format=mf)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        losses = model.train_step(a, b)
    losses.sum().item()  # waits for the device
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["cpu", "full"])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    common = dict(size=args.size, n_blocks=args.blocks, batch_size=args.batch_size)
    eager = make_config(args.profile, amp=False, channels_last=False, compile=False, **common)
    ours = make_config(args.profile, amp=True, channels_last=device.type == "cuda", compile=args.compile, **common)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}: CycleGAN {args.profile} profile, {ours.size} px, ngf {ours.ngf}, {ours.blocks} blocks, "
          f"batch {ours.batch_size}")
    base = pairs_per_second(eager, device, args.steps, args.warmup)
    print(f"  plain eager float32:              {base:8.1f} pairs/s", flush=True)
    try:
        fast = pairs_per_second(ours, device, args.steps, max(args.warmup, 3 if args.compile else 0))
        what = ("bf16 autocast, channels_last" if device.type == "cuda" else "same settings on CPU") + \
               (", torch.compile" if args.compile else "")
        print(f"  ours ({what}): {fast:8.1f} pairs/s  ({fast / base:.2f}x eager)")
    except Exception as exc:  # report, do not hide: a compile failure must show in the figures
        print(f"  ours failed: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
