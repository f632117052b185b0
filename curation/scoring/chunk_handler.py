"""Transformation SSIMs in chunks that any number of GPU workers take in parallel, under one score_ambiguity job.

The parent job plans chunk jobs (kind "score_chunk", queue gpu, Job.parent the scoring job, params {"gan",
"direction", "epoch", "ids": [first, last]}: the source-class train images with ids in that range, at most
SCORE_CHUNK_IMAGES of them, of one generator direction; a range keeps the Job rows small) and records their ids in
its state in the same transaction, so a re-run parent reuses them instead of enqueueing duplicates. Each chunk
upserts its TransformScore rows and its own checkpoint together, so a chunk that dies is re-run alone (by the
reaper, as any job) and duplicates nothing.

The parent runs them through its JobContext (children_run): it never just waits for a worker (with one worker
process of concurrency 1, the embedded demo, nobody else would take the chunks), it claims queued chunks itself
until none is queued, then waits for those running elsewhere; its progress is the sum of its chunks'. A chunk that
failed is queued again while it has attempts left; one that failed after its last attempt fails the parent, naming
it. Cancelling the parent cancels its chunks (job_cancel).

This is the chunk's worker side (only the job runner imports it); its parameters are chunk_params.py, and the
parent's side (chunks_plan, chunks_run) is in handler.py, the score_ambiguity job's.
"""
from django.db import transaction

from curation.classifier.arrays import load_arrays
from curation.classifier.selection import Item
from curation.gans.generators import load_generator
from curation.gans.snapshots import (
    REVERSE,
    direction_labels,
    direction_name,
)
from curation.models import GanModel, Image, TransformScore
from gan.scoring import transform_ssim
from training.placement import pick_device

BATCH = 256  # images per generator forward pass
COMMIT_EVERY = BATCH * 4  # images per transaction (rows + the chunk's checkpoint)


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
    name = direction_name(gan, direction)
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
