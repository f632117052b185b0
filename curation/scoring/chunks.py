"""Transformation SSIMs in chunks that any number of GPU workers take in parallel, under one score_ambiguity job.

The parent job plans chunk jobs (kind "score_chunk", queue gpu, params {"parent", "gan", "direction", "epoch",
"ids": [first, last]}: the source-class train images with ids in that range, at most SCORE_CHUNK_IMAGES of them,
of one generator direction; a range keeps the Job rows small) and records their ids in its state in the same
transaction, so a re-run parent reuses them instead of enqueueing duplicates. Each chunk upserts its
TransformScore rows and its own checkpoint together, so a chunk that dies is re-run alone (by the reaper, as any
job) and duplicates nothing.

The parent never just waits for a worker: with one worker process of concurrency 1 (the embedded demo) nobody
else would take the chunks. It claims queued chunks itself (job_claim, same fencing, recorded on the chunk's row
as if a worker had run it) until none is queued, then waits for those running elsewhere; its progress is the sum
of its chunks'. A chunk that failed is queued again while it has attempts left; one that failed after its last
attempt fails the parent, naming it. Cancelling the parent cancels its chunks (job_cancel).
"""
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from curation.classifier.arrays import load_arrays
from curation.classifier.selection import Item
from curation.gans.data import domain_items
from curation.jobs.errors import JobCancelled, JobLost, JobParamsError
from curation.labels import CLASSES
from curation.models import GanModel, Image, Job, TransformScore

BATCH = 256  # images per generator forward pass
COMMIT_EVERY = BATCH * 4  # images per transaction (rows + the chunk's checkpoint)
WAIT_SECONDS = 0.5
DIRECTIONS = ("AB", "BA")
REVERSE = {"AB": "BA", "BA": "AB"}


def direction_labels(gan, direction):
    """(source, target) of a generator direction: AB is G_A (source -> target), BA is G_B (target -> source)."""
    return (gan.source_label, gan.target_label) if direction == "AB" else (gan.target_label, gan.source_label)


def generator_snapshot(gan):
    """(checkpoint path relative to MEDIA_ROOT, epoch) of the generators scoring uses: the chosen snapshot, or the
    last epoch's state."""
    if gan.chosen_epoch:
        entry = next((e for e in gan.losses if e["epoch"] == gan.chosen_epoch and e.get("generators")), None)
        if entry:
            return entry["generators"], gan.chosen_epoch
    return gan.checkpoint, gan.epoch


def snapshot_quality(gan):
    """(epoch, {"AB": ..., "BA": ...}) of the quality instrument (curation.gans.job) at the snapshot scoring uses;
    {} where it was not measured there."""
    _, epoch = generator_snapshot(gan)
    entry = next((e for e in gan.losses or [] if e.get("epoch") == epoch), {})
    return epoch, entry.get("quality") or {}


def snapshot_path(gan, epoch):
    """The file holding the generators of one snapshot epoch (a chunk names the epoch its parent planned with)."""
    path, current = generator_snapshot(gan)
    if epoch == current:
        return path
    entry = next((e for e in gan.losses if e["epoch"] == epoch and e.get("generators")), None)
    if entry:
        return entry["generators"]
    if epoch == gan.epoch:
        return gan.checkpoint
    raise FileNotFoundError(f"CycleGAN {gan.pk} has no generators saved at epoch {epoch}")


# The last generator loaded in this process: a parent running many chunks of one direction loads it once.
_loaded = {}


def load_generator(gan, direction, epoch, device):
    """(generator network in eval mode on device, image size) of one direction at one snapshot."""
    path = Path(settings.MEDIA_ROOT) / snapshot_path(gan, epoch)
    key = (str(path), path.stat().st_mtime_ns, direction, str(device))  # the file itself, not ids a database reuses
    if key not in _loaded:
        import torch

        from gan.cyclegan import GanConfig
        from gan.networks import ResnetGenerator

        state = torch.load(path, weights_only=True, map_location="cpu")
        cfg = GanConfig.from_dict(state["config"])
        net = ResnetGenerator(cfg.ngf, cfg.blocks, upsample=cfg.upsample).to(device)
        net.load_state_dict(state["G_A" if direction == "AB" else "G_B"])
        if len(_loaded) >= 2:  # the two generators of one pair: a chunk uses both
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = (net.eval(), cfg.size)
    return _loaded[key]


def chunk_name(gan, direction):
    source, target = direction_labels(gan, direction)
    return f"{CLASSES[source]}->{CLASSES[target]}"


# --- the chunk job ---------------------------------------------------------------------------------------------

def validate_chunk_params(params):
    def whole(name):
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise JobParamsError(f"{name} must be a non-negative integer, not {value!r}")
        return value

    parent = whole("parent")
    if not Job.objects.filter(pk=parent, kind="score_ambiguity").exists():
        raise JobParamsError(f"parent {parent} is not a score_ambiguity job")
    gan = GanModel.objects.filter(pk=whole("gan"), status=GanModel.Status.SUCCEEDED).first()
    if gan is None:
        raise JobParamsError(f"gan {params['gan']} is not a finished CycleGAN")
    if params.get("direction") not in DIRECTIONS:
        raise JobParamsError(f"direction must be AB or BA, not {params.get('direction')!r}")
    epoch = whole("epoch")
    ids = params.get("ids")
    if not (isinstance(ids, list) and len(ids) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
            and ids[0] <= ids[1]):
        raise JobParamsError(f"ids must be [first image id, last image id], not {ids!r}")
    return {"parent": parent, "gan": gan.pk, "direction": params["direction"], "epoch": epoch, "ids": ids}


def chunk_items(gan, direction, ids):
    """The chunk's images: train images with ids in [first, last] labelled with the direction's source class, not
    excluded (the images the parent planned, with any relabel since applied), in id order."""
    source, _ = direction_labels(gan, direction)
    rows = (Image.objects.filter(dataset_id=gan.dataset_id, split=Image.Split.TRAIN, label=source,
                                 id__gte=ids[0], id__lte=ids[1])
            .exclude(status=Image.Status.EXCLUDED).order_by("id").values("id", "file", "content_hash", "path"))
    return [Item("image", r["id"], r["file"], r["content_hash"], source, r["path"]) for r in rows]


def score_chunk_job(ctx):
    """SSIM(image, G(image)) for the chunk's images that have no score at this snapshot yet, upserted with the
    chunk's checkpoint in one transaction per COMMIT_EVERY images."""
    from gan.scoring import transform_ssim
    from training.engine import pick_device

    p = ctx.params
    gan = GanModel.objects.get(pk=p["gan"])
    direction, epoch = p["direction"], p["epoch"]
    _, target = direction_labels(gan, direction)
    items = chunk_items(gan, direction, p["ids"])
    done = set(TransformScore.objects.filter(gan=gan, direction=direction, epoch=epoch, image_id__gte=p["ids"][0],
                                             image_id__lte=p["ids"][1], ssim_into__isnull=False)
               .values_list("image_id", flat=True))
    # Images of the range scored before (at plan time, or by a killed attempt of this chunk) are not decoded again.
    todo = [item for item in items if item.id not in done]
    computed = ctx.state.get("computed", 0)
    name = chunk_name(gan, direction)
    if todo:
        device = pick_device()
        net, size = load_generator(gan, direction, epoch, device)
        into, _ = load_generator(gan, REVERSE[direction], epoch, device)  # the generator into the source class
        images, _ = load_arrays(todo, size)
        for start in range(0, len(todo), COMMIT_EVERY):
            part = todo[start : start + COMMIT_EVERY]
            batch = images[start : start + COMMIT_EVERY]
            values = transform_ssim(net, batch, batch_size=BATCH)
            baseline = transform_ssim(into, batch, batch_size=BATCH)
            scores = [TransformScore(image_id=item.id, gan=gan, direction=direction, target_label=target,
                                     epoch=epoch, ssim=float(v), ssim_into=float(b))
                      for item, v, b in zip(part, values, baseline)]
            with transaction.atomic():
                TransformScore.objects.bulk_create(scores, update_conflicts=True,
                                                   unique_fields=["image", "gan", "direction"],
                                                   update_fields=["ssim", "ssim_into", "epoch", "target_label"])
                computed += len(scores)
                ctx.save_state({"computed": computed})
            ctx.progress((start + len(part)) / len(todo), f"SSIM {name}: {start + len(part)} of {len(todo)}")
    return {"gan": gan.pk, "direction": direction, "images": len(items), "computed": computed}


# --- the parent's side -----------------------------------------------------------------------------------------

def chunks_plan(ctx, dataset, gans, *, chunk_images):
    """The parent's chunks: [{"id": job id, "n": images, "name": "happy->sad"}], planned once per job.

    Every train image labelled A without a score at the current snapshot of a generator leaving A, in id order,
    cut into chunks of at most chunk_images per direction. The chunk jobs and the parent's state that lists them
    commit together, so a parent re-run after a crash finds them and plans nothing twice."""
    from curation.jobs.services import job_enqueue

    if "chunks" in ctx.state:
        return ctx.state["chunks"]
    planned = []
    for gan in gans:
        _, epoch = generator_snapshot(gan)
        for direction in DIRECTIONS:
            source, _ = direction_labels(gan, direction)
            done = set(TransformScore.objects.filter(gan=gan, direction=direction, epoch=epoch, ssim_into__isnull=False)
                       .values_list("image_id", flat=True))
            todo = [item.id for item in domain_items(dataset, source) if item.id not in done]
            for start in range(0, len(todo), chunk_images):
                part = todo[start : start + chunk_images]
                planned.append((chunk_name(gan, direction), len(part), {"gan": gan.pk, "direction": direction,
                                                                        "epoch": epoch, "ids": [part[0], part[-1]]}))
    with transaction.atomic():
        chunks = []
        for name, n, params in planned:
            job = job_enqueue(kind="score_chunk", params={"parent": ctx.job_id, **params})
            chunks.append({"id": job.pk, "n": n, "name": name})
        ctx.save_state({**ctx.state, "chunks": chunks})
    return chunks


class ChunkFailed(RuntimeError):
    pass


def chunks_run(ctx, chunks, *, share=0.8):
    """Run the parent's chunks to the end: take queued ones here, wait for those running elsewhere. Progress goes
    from 0 to `share` by images done. Returns the number of SSIMs the chunks computed."""
    from curation.jobs.services import job_cancel

    try:
        return _run(ctx, chunks, share)
    except JobLost:
        raise  # another attempt of the parent owns the chunks now
    except BaseException:
        # Cancelled or failed: nobody should spend a GPU on the rest.
        for chunk in chunks:
            job_cancel(job_id=chunk["id"])
        raise


def _run(ctx, chunks, share):
    from curation.jobs.runner import job_run, worker_label
    from curation.jobs.services import job_retry, jobs_reap

    if not chunks:
        return 0
    size = {c["id"]: c["n"] for c in chunks}
    name = {c["id"]: c["name"] for c in chunks}
    total = sum(size.values())
    here = worker_label()
    last_reap = time.monotonic()
    while True:
        ctx.check()
        jobs = {j.pk: j for j in Job.objects.filter(pk__in=list(size)).only(
            "pk", "status", "progress", "attempts", "max_attempts", "error", "message", "result")}
        missing = set(size) - set(jobs)
        if missing:
            raise ChunkFailed(f"chunk jobs {sorted(missing)} of this scoring job were deleted")
        for pk, job in jobs.items():
            if job.status == Job.Status.FAILED and not job_retry(job_id=pk):
                reason = (job.error.split("\n\n")[0] if job.error else job.message) or "no reason recorded"
                raise ChunkFailed(f"chunk job {pk} ({name[pk]}, {size[pk]} images) failed after {job.attempts} "
                                  f"attempt(s): {reason}")
            if job.status == Job.Status.CANCELLED:
                if Job.objects.filter(pk=ctx.job_id, cancel_requested=True).exists():
                    raise JobCancelled(f"job {ctx.job_id} was cancelled")
                raise ChunkFailed(f"chunk job {pk} ({name[pk]}) was cancelled, so the scores are incomplete; "
                                  f"run score_ambiguity again to compute what is missing")
        done = sum(size[pk] * (1.0 if j.status == Job.Status.SUCCEEDED else j.progress) for pk, j in jobs.items())
        finished = [pk for pk, j in jobs.items() if j.status == Job.Status.SUCCEEDED]
        if len(finished) == len(jobs):
            return sum((jobs[pk].result or {}).get("computed", 0) for pk in finished)
        queued = [pk for pk in size if jobs[pk].status == Job.Status.QUEUED]
        if queued:
            pk = queued[0]
            n_done = len(finished)

            def passed_on(fraction, message, pk=pk, base=done - size[pk] * jobs[pk].progress):
                try:
                    ctx.progress(share * (base + size[pk] * fraction) / total,
                                 f"chunk {n_done + 1} of {len(jobs)} ({message})")
                except (JobCancelled, JobLost):
                    pass  # the parent's own loop stops after this chunk; its cancel reaches the chunk by job_cancel

            # Another worker may take it first; job_run then returns None and the loop looks again.
            job_run(job_id=pk, worker=here, on_progress=passed_on)
            continue
        ctx.progress(share * done / total, f"SSIM: {len(finished)} of {len(jobs)} chunks done, the rest running "
                                           f"on other workers")
        if time.monotonic() - last_reap > settings.JOB_REAP_INTERVAL_SECONDS:
            # A chunk whose worker died is re-queued even where no worker runs a reaper (an --inline parent).
            jobs_reap()
            last_reap = time.monotonic()
        time.sleep(WAIT_SECONDS)
