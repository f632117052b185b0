"""The GPU run book: every GPU figure the project still owes, each beside its baseline from the same run, in one
command sized for at most 8 minutes on one H100/H200. Writes DIR/gpu.json and DIR/gpu.md as it goes (a run cut
short still leaves the sections it finished).

    python -m benchmarks.gpu --out DIR            # on the GPU
    python -m benchmarks.gpu --out DIR --smoke    # the same code on the CPU with tiny sizes (the test suite runs it)

Sections (figure | same-run baseline | goal):
  throughput   resnet18 training at 64 px, the real pipeline | the model-only ceiling | >= 50,000 images/s, >= 90 %
  accuracy     resnet18 and seed_cnn test accuracy on 16,000 faces, clean | with 20 % label noise
  cyclegan     a CycleGAN step, 128 px, 9 blocks, compiled | eager float32 | >= 2x
  scoring      generator + SSIM at 128 px on the device | generator, then skimage SSIM per image | >= 3,000/s, >= 3x
  cache        an epoch streaming batches from the memory-mapped cache | the same epoch with the cache on the device
  cleaning     bench_cleaning (full profile, --inline) sized to the time left, with its stage timings
  robust       (only with --only robust) the default bench_cleaning with issue 31's arms, --robust elr,dividemix
               --ssl-epochs 12 --queue-start ssl, both noise models side by side | baseline, review, oracle in the
               same runs |
               reviewed + robust >= 80 % of the gap, the best automatic run >= 50 %
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy import load_synthetic
from benchmarks.gan_score_speed import published
from benchmarks.gan_train_speed import pairs_per_second
from benchmarks.train_speed import ceiling, pipeline
from gan.config import make_config
from gan.networks import ResnetGenerator, init_weights
from gan.scoring import transform_ssim
from training.cache import load_cache, save_cache
from training.config import TrainConfig
from training.engine import _make_optimizer, fit, predict_proba, train_one_epoch
from training.placement import pick_device, place_images
from training.labels import CLASSES
from training.metrics import classification_report
from training.models import build_model
from training.synthetic_faces import NOISE_MODELS, make_synthetic_faces

ROOT = Path(__file__).resolve().parents[1]

SIZES = {
    "full": dict(
        budget=480,
        throughput=dict(arch="resnet18", size=64, batch_size=512, steps=40, warmup=5),
        accuracy=dict(n=16000, size=64, noise=0.2, epochs=30, batch_size=256, archs=("resnet18", "seed_cnn")),
        cyclegan=dict(size=128, blocks=9, batch_size=16, steps=20, warmup=5, compile=True),
        scoring=dict(size=128, blocks=9, n=4096, batch_size=256),
        cache=dict(n=60000, size=64, arch="resnet18", batch_size=512),
        cleaning=dict(min_seconds=90, run=True),
        robust=dict(min_seconds=150, run=True, threads=6),
    ),
    "smoke": dict(
        budget=240,
        throughput=dict(arch="resnet18", size=32, batch_size=4, steps=2, warmup=1),
        accuracy=dict(n=80, size=64, noise=0.2, epochs=1, batch_size=16, archs=("resnet18", "seed_cnn")),
        cyclegan=dict(size=32, blocks=1, batch_size=1, steps=1, warmup=1, compile=False),
        scoring=dict(size=32, blocks=1, n=8, batch_size=4),
        cache=dict(n=48, size=32, arch="small_cnn", batch_size=8),
        # The sizing runs; bench_cleaning itself does not (tests/test_bench_cleaning.py runs it, tiny).
        cleaning=dict(min_seconds=90, run=False),
        # Run for real, tiny (2 epochs, so that DivideMix divides once): the lease must not find the plumbing broken.
        robust=dict(min_seconds=150, run=True, threads=1,
                    extra=["--n", "240", "--size", "24", "--epochs", "2", "--folds", "2", "--gan-epochs", "1",
                           "--gan-epochs-decay", "0", "--seeds", "1", "--ssl-epochs", "1", "--ssl-batch-size", "32"]),
    ),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def section_throughput(p, device, work, left):
    cfg = TrainConfig(arch=p["arch"], size=p["size"], batch_size=p["batch_size"], augment=True)
    top = ceiling(cfg, device, p["steps"], p["warmup"])
    ours = pipeline(cfg, device, p["steps"], p["warmup"])
    return {"figure": f"{p['arch']} training, {p['size']} px, batch {p['batch_size']}: the real pipeline",
            "value": ours, "unit": "images/s", "baseline": top, "baseline_name": "model-only ceiling",
            "ratio": ours / top, "goal": ">= 50,000 images/s and >= 0.90 of the ceiling",
            "met": ours >= 50_000 and ours >= 0.9 * top}


def section_accuracy(p, device, work, left):
    faces = work / "faces"
    made = make_synthetic_faces(faces, n=p["n"], size=p["size"], noise=p["noise"], seed=0,
                                workers=min(16, len(os.sched_getaffinity(0))) if p["n"] > 2000 else 1)
    images, given, true, split = load_synthetic(faces, p["size"])
    save_cache(work / "faces_cache", np.arange(len(images)), images)
    del images
    _, images = load_cache(work / "faces_cache")  # memory-mapped, as the jobs read it
    tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    rows = []
    for arch in p["archs"]:
        for name, labels in (("clean", true), ("noisy", given)):
            cfg = TrainConfig(arch=arch, size=p["size"], epochs=p["epochs"], batch_size=p["batch_size"],
                              early_stopping_patience=8)
            t0 = time.perf_counter()
            result = fit(cfg, images, labels, np.asarray(images[va]), labels[va], device=device, train_index=tr)
            probs = predict_proba(result.model, images, index=te, batch_size=512, device=device)
            report = classification_report(true[te], probs.argmax(1), len(CLASSES))
            rows.append({"arch": arch, "labels": name, "accuracy": report["accuracy"],
                         "macro_f1": report["macro_f1"], "best_epoch": result.best_epoch,
                         "epochs_run": len(result.history), "seconds": time.perf_counter() - t0,
                         "cache": str(result.placement)})
    by = {(r["arch"], r["labels"]): r["accuracy"] for r in rows}
    return {"figure": f"test accuracy, {p['n']} faces at {p['size']} px ({made['noise_rate']:.0%} label noise)",
            "rows": rows, "value": {f"{a} {n}": v for (a, n), v in by.items()},
            "baseline_name": "clean labels", "goal": "measured (no fixed goal): the cost of label noise per arch",
            "met": None}


def section_cyclegan(p, device, work, left):
    common = dict(size=p["size"], n_blocks=p["blocks"], batch_size=p["batch_size"])
    eager = make_config("full", amp=False, channels_last=False, compile=False, **common)
    ours = make_config("full", amp=True, channels_last=device.type == "cuda", compile=p["compile"], **common)
    base = pairs_per_second(eager, device, p["steps"], p["warmup"])
    fast = pairs_per_second(ours, device, p["steps"], max(p["warmup"], 3 if p["compile"] else 0))
    what = "compiled, bf16, channels_last" if p["compile"] else "not compiled (smoke), bf16 on CUDA only"
    return {"figure": f"CycleGAN step, {p['size']} px, {p['blocks']} blocks, batch {p['batch_size']}: {what}",
            "value": fast, "unit": "pairs/s", "baseline": base, "baseline_name": "eager float32",
            "ratio": fast / base, "goal": ">= 2x eager", "met": fast >= 2 * base}


def section_scoring(p, device, work, left):
    cfg = make_config("full", size=p["size"], n_blocks=p["blocks"])
    net = ResnetGenerator(cfg.ngf, cfg.blocks, upsample=cfg.upsample).to(device).eval()
    net.apply(init_weights)
    images = np.random.default_rng(0).integers(0, 256, (p["n"], p["size"], p["size"], 3), dtype=np.uint8)
    transform_ssim(net, images[: p["batch_size"]], batch_size=p["batch_size"])  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    ours = transform_ssim(net, images, batch_size=p["batch_size"])
    _sync(device)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = published(net, images, p["batch_size"], device)
    t_ref = time.perf_counter() - t0
    value, base = p["n"] / t_ours, p["n"] / t_ref
    return {"figure": f"scoring, generator ({cfg.blocks} blocks) + SSIM at {p['size']} px, {p['n']} images",
            "value": value, "unit": "images/s", "baseline": base,
            "baseline_name": "published: generator, then skimage SSIM per image", "ratio": value / base,
            "max_abs_difference": float(np.abs(ours - ref).max()),
            "goal": ">= 3,000 images/s and >= 3x", "met": value >= 3000 and value >= 3 * base}


def _epoch_rate(source, labels, cfg, device):
    model = build_model(cfg.arch, cfg.num_classes, cfg.size).to(device).to(memory_format=torch.channels_last)
    opt, _ = _make_optimizer(model, cfg, 1)
    gen = torch.Generator(device=device).manual_seed(0)
    y = torch.as_tensor(labels, device=device)
    warm, _ = place_images(np.zeros((2 * cfg.batch_size + 1, cfg.size, cfg.size, 3), np.uint8), device, mode="device")
    train_one_epoch(model, opt, None, warm, y[: len(warm)], cfg=cfg, device=device, generator=gen, loss_weight=None)
    _sync(device)
    t0 = time.perf_counter()
    train_one_epoch(model, opt, None, source, y, cfg=cfg, device=device, generator=gen, loss_weight=None)
    _sync(device)
    return len(labels) / (time.perf_counter() - t0)


def section_cache(p, device, work, left):
    rng = np.random.default_rng(0)
    save_cache(work / "random_cache", np.arange(p["n"]),
               rng.integers(0, 256, (p["n"], p["size"], p["size"], 3), dtype=np.uint8))
    _, images = load_cache(work / "random_cache")
    labels = rng.integers(0, 8, p["n"])
    cfg = TrainConfig(arch=p["arch"], size=p["size"], batch_size=p["batch_size"], augment=True)
    on_device, _ = place_images(images, device, mode="device")
    device_rate = _epoch_rate(on_device, labels, cfg, device)
    del on_device
    streamed, _ = place_images(images, device, mode="stream")
    stream_rate = _epoch_rate(streamed, labels, cfg, device)
    return {"figure": f"{p['arch']} epoch over {p['n']} cached images at {p['size']} px, streamed from the "
                      f"memory-mapped cache", "value": stream_rate, "unit": "images/s", "baseline": device_rate,
            "baseline_name": "the same epoch, cache on the device", "ratio": stream_rate / device_rate,
            "goal": "streaming within 10 % of on-device", "met": stream_rate >= 0.9 * device_rate}


def cleaning_args(left):
    """bench_cleaning options for `left` seconds: the full profile scaled down linearly below 10 minutes (a
    guess until a GPU run times its stages; the run is stopped at the time left whatever it costs)."""
    scale = min(1.0, left / 600)
    n = max(800, int(16000 * scale) // 100 * 100)
    epochs, gan_epochs = max(3, int(30 * scale)), max(1, int(10 * scale))
    return ["--profile", "full", "--inline", "--n", str(n), "--epochs", str(epochs), "--folds", "3", "--seeds", "1",
            "--gan-epochs", str(gan_epochs), "--gan-epochs-decay", str(gan_epochs)]


def _migrate(env, *, timeout):
    """The data folder `env` names gets its database tables (bench_cleaning refuses an unmigrated one)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True,
                   timeout=timeout, capture_output=True)


def section_cleaning(p, device, work, left):
    """bench_cleaning --profile full in a process of its own, sized to the time left (a guess until a GPU run
    says how long each stage takes), stopped at the time left."""
    if left < p["min_seconds"]:
        return {"skipped": f"{left:.0f} s left; a bench_cleaning run needs at least {p['min_seconds']} s",
                "met": None}
    args = cleaning_args(left)
    if not p["run"]:
        return {"skipped": f"smoke: with {left:.0f} s left the book would run bench_cleaning {' '.join(args)}",
                "args": args, "met": None}
    out = work / "bench_cleaning"
    env = {**os.environ, "FER_DATA_DIR": str(work / "cleaning_data")}
    t0 = time.perf_counter()
    try:
        _migrate(env, timeout=left)
        run = subprocess.run([sys.executable, "manage.py", "bench_cleaning", *args, "--out", str(out)], cwd=ROOT,
                             env=env, timeout=max(1, left - (time.perf_counter() - t0) - 5), capture_output=True,
                             text=True)
    except subprocess.TimeoutExpired:
        return {"figure": f"bench_cleaning {' '.join(args)}", "stopped": f"ran out of time after {left:.0f} s",
                "seconds": time.perf_counter() - t0, "met": None}
    report = out / "report.json"
    result = {"figure": f"bench_cleaning {' '.join(args)}", "seconds": time.perf_counter() - t0,
              "returncode": run.returncode, "met": None}
    if report.exists():
        data = json.loads(report.read_text())
        result["stage_seconds"] = data.get("timings")
        result["report"] = str(report)
    if run.returncode:
        result["error"] = run.stderr[-2000:]
    return result


def robust_args(left):
    """bench_cleaning options for issue 31's figures in `left` seconds: the default (cpu) profile, 8,000 faces and
    small_cnn, with ELR and DivideMix, each alone, after review and on the true labels, from scratch and from a
    12-epoch SimCLR start, the queue's out-of-fold models from that start as the product trains them. Two seeds from
    7 minutes on, else one (a guess until a GPU run times the arms: on the CPU a DivideMix arm costs 6-7 plain
    retrains)."""
    return ["--profile", "cpu", "--inline", "--seeds", "2" if left >= 420 else "1", "--robust", "elr,dividemix",
            "--ssl-epochs", "12", "--queue-start", "ssl"]


def _robust_summary(report):
    """What issue 31 asks of one noise model's report: each run's accuracy (mean and spread over the seeds) and
    share of the gap, the two goals, how well each signal finds the wrong labels, and the seconds of each stage."""
    runs = {name: {"accuracy": row["accuracy"], "accuracy_std": row.get("accuracy_std"),
                   "gap_recovered": row.get("gap_recovered_accuracy")}
            for name, row in report["runs"]["runs"].items()}
    goals = report["goals"]
    return {"runs": runs, "reviewed_robust_recovers_80pct": goals.get("reviewed_robust_recovers_80pct"),
            "best_automatic_recovers_half": goals.get("best_automatic_recovers_half"),
            "detection_auroc": {name: (per.get("all") or {}).get("auroc")
                                for name, per in report["detection"]["signals"].items()},
            "stage_seconds": report.get("timings")}


def section_robust(p, device, work, left):
    """Issue 31's arms on the default benchmark, one bench_cleaning process a noise model, side by side (the
    small network leaves the GPU room for both), each with its own SQLite database, stopped at the time left."""
    if left < p["min_seconds"]:
        return {"skipped": f"{left:.0f} s left; the robust arms need at least {p['min_seconds']} s", "met": None}
    args = robust_args(left) + p.get("extra", [])  # the smoke's tiny sizes override the default profile's
    commands = {m: [*args, "--noise-model", m, "--threads", str(p["threads"])] for m in NOISE_MODELS}
    if not p["run"]:
        return {"skipped": f"smoke: with {left:.0f} s left the book would run, side by side, "
                           + "; ".join(f"bench_cleaning {' '.join(c)}" for c in commands.values()),
                "args": commands, "met": None}
    t0 = time.perf_counter()
    envs = {m: {**os.environ, "FER_DATA_DIR": str(work / m / "data")} for m in commands}
    for m, env in envs.items():  # both databases before either run starts: a failure here leaves nothing running
        env.pop("DATABASE_URL", None)  # a database of its own: two processes, one SQLite file each
        _migrate(env, timeout=left)
    procs, logs = {}, {}
    for m, command in commands.items():
        logs[m] = open(work / f"{m}.log", "w")
        procs[m] = subprocess.Popen([sys.executable, "manage.py", "bench_cleaning", *command,
                                     "--out", str(work / m / "out")], cwd=ROOT, env=envs[m], stdout=logs[m],
                                    stderr=subprocess.STDOUT, start_new_session=True)
    result = {"figure": "bench_cleaning " + " ".join(args) + " --noise-model uniform|annotators", "models": {},
              "met": None}
    for m, proc in procs.items():
        stopped = False
        try:
            proc.wait(timeout=max(1, left - (time.perf_counter() - t0) - 5))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its session: the job's own worker processes too
            proc.wait()
            stopped = True
        logs[m].close()
        report = work / m / "out" / "report.json"
        if report.exists():
            result["models"][m] = _robust_summary(json.loads(report.read_text()))
        else:
            tail = (work / f"{m}.log").read_text()[-2000:]
            result["models"][m] = {"stopped" if stopped else "error":
                                   f"returncode {proc.returncode} after {time.perf_counter() - t0:.0f} s: {tail}"}
    result["seconds"] = time.perf_counter() - t0
    return result


SECTIONS = [("throughput", section_throughput), ("accuracy", section_accuracy), ("cyclegan", section_cyclegan),
            ("scoring", section_scoring), ("cache", section_cache), ("cleaning", section_cleaning)]
# Run only when named (--only robust): it needs a lease of its own, the book's other sections filling one.
OPTIONAL = [("robust", section_robust)]


def _fmt(v):
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return "-" if v is None else str(v)


def _pct(v):
    return "-" if v is None else f"{v:.0%}"


def _robust_line(r):
    if "runs" not in r:
        return next(iter(r.values()))[:200]
    auto, both = r["best_automatic_recovers_half"] or {}, r["reviewed_robust_recovers_80pct"] or {}
    margin, spread = both.get("margin_over_robust_alone"), both.get("seed_spread")
    return (f"best automatic {auto.get('run')} {_pct(auto.get('gap_recovered_accuracy'))} of the gap; best reviewed "
            f"+ robust {both.get('run')} {_pct(both.get('gap_recovered_accuracy'))} (its review ceiling "
            f"{_pct(both.get('ceiling_gap_recovered_accuracy'))}), "
            f"{_fmt(margin)} over {both.get('robust_alone')} (seed spread {_fmt(spread)})")


def markdown(book):
    lines = [f"# GPU run book: {book['device']}", "", f"{book['date']}, {book['mode']} sizes, "
             f"{book['seconds']:.0f} s of a {book['budget']} s budget.", "",
             "| section | figure | value | baseline | ratio | goal | met |", "|---|---|---|---|---|---|---|"]
    for name, s in book["sections"].items():
        if "error" in s and "value" not in s:
            lines.append(f"| {name} | failed | {s['error'][:200]} | | | | |")
            continue
        if "skipped" in s:
            lines.append(f"| {name} | skipped | {s['skipped']} | | | | |")
            continue
        value = s.get("value")
        if "models" in s:
            value = "; ".join(f"{m}: {_robust_line(r)}" for m, r in s["models"].items())
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.3f}" for k, v in value.items())
        elif value is not None:
            value = f"{_fmt(value)} {s.get('unit', '')}"
        base = f"{_fmt(s.get('baseline'))} ({s.get('baseline_name', '')})" if "baseline" in s else \
            s.get("baseline_name", "-")
        lines.append(f"| {name} | {s.get('figure', '')} | {value if value is not None else _fmt(s.get('seconds'))} | "
                     f"{base} | {_fmt(s.get('ratio'))} | {s.get('goal', '-')} | "
                     f"{ {True: 'yes', False: 'no', None: '-'}[s.get('met')] } |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu.json and gpu.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: proves the book runs")
    parser.add_argument("--only", nargs="+", choices=[n for n, _ in SECTIONS + OPTIONAL],
                        help="run these sections only (robust runs only when named)")
    parser.add_argument("--budget", type=float, help="seconds for the whole book (full 480, smoke 240)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    sizes = SIZES[mode]
    device = torch.device("cpu") if args.smoke else pick_device()
    if args.smoke:
        torch.set_num_threads(1)  # tiny sizes: one thread, no spinning thread pool on a shared machine
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif not args.smoke:
        print("no CUDA device: the full sizes would take hours on a CPU; run --smoke here", file=sys.stderr)
        raise SystemExit(2)
    budget = args.budget or sizes["budget"]
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    book = {"device": name, "mode": mode, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "budget": budget, "torch": torch.__version__, "sections": {}, "seconds": 0.0}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_book_") as tmp:
        wanted = args.only or [name for name, _ in SECTIONS]
        for section, run in SECTIONS + OPTIONAL:
            if section not in wanted:
                continue
            left = budget - (time.perf_counter() - started)
            t0 = time.perf_counter()
            if left <= 0:
                result = {"skipped": "the budget is spent", "met": None}
            else:
                work = Path(tmp) / section
                work.mkdir()
                try:
                    result = run(sizes[section], device, work, left)
                except Exception as exc:  # report it and go on: one broken section must not cost the others
                    result = {"error": f"{type(exc).__name__}: {exc}", "met": None}
            result["section_seconds"] = time.perf_counter() - t0
            book["sections"][section] = result
            book["seconds"] = time.perf_counter() - started
            (args.out / "gpu.json").write_text(json.dumps(book, indent=1, default=str))
            (args.out / "gpu.md").write_text(markdown(book))
            print(f"{section}: {json.dumps({k: v for k, v in result.items() if k != 'rows'}, default=str)}",
                  flush=True)
    print(markdown(book))
    return book


if __name__ == "__main__":
    main()
