"""Reads for the generators page: a dataset's CycleGANs with their loss series, snapshots, quality rows and the
snapshot each label pair uses."""
from curation.gans.snapshots import generator_snapshot, pair_generators
from curation.models import GanModel
from training.labels import CLASSES


GAN_LOSS_KEYS = ("G_A", "G_B", "D_A", "D_B", "cycle", "idt")


def dataset_gans(*, dataset):
    """The dataset's CycleGANs, newest first, each with its loss series, snapshot epochs (those whose generators
    were saved), quality rows, the epoch scoring uses, and `used_by_pair`: the CycleGAN its pair uses (scoring, the
    review card and generation: curation.gans.snapshots.pair_generators), None while none of the pair finished.
    `pairs`: one row per pair, what it uses and why."""
    used = {frozenset((g.source_label, g.target_label)): g for g in pair_generators(dataset)}
    out = []
    for gan in GanModel.objects.filter(dataset=dataset).select_related("job", "classifier_run").order_by("-id"):
        in_use = used.get(frozenset((gan.source_label, gan.target_label)))
        losses = gan.losses or []
        snapshots = [e["epoch"] for e in losses if e.get("generators")]
        scoring_epoch = generator_snapshot(gan)[1]  # the chosen snapshot if it was saved, else the last epoch
        quality = []
        for e in losses:
            q = e.get("quality")
            if q:
                quality.append({"epoch": e["epoch"], "AB": q.get("AB") or {}, "BA": q.get("BA") or {},
                                "chosen": e["epoch"] == scoring_epoch})
        out.append({
            "gan": gan,
            "pair": f"{CLASSES[gan.source_label]} ↔ {CLASSES[gan.target_label]}",
            "source": CLASSES[gan.source_label], "target": CLASSES[gan.target_label],
            "series": [{"name": k, "points": [(e["epoch"], e.get(k)) for e in losses]} for k in GAN_LOSS_KEYS
                       if any(k in e for e in losses)],
            "samples": {e["epoch"]: e["samples"] for e in losses if e.get("samples")},
            "snapshots": snapshots,
            "quality": quality,
            "scoring_epoch": scoring_epoch,
            "used": in_use is not None and in_use.pk == gan.pk,
            "used_by_pair": in_use and {"pk": in_use.pk, "epoch": generator_snapshot(in_use)[1],
                                        "chosen": in_use.chosen_at is not None},
        })
    return out


def pair_choices(gans):
    """One row per label pair of dataset_gans' output, in its order: {"pair", "gan", "epoch", "chosen", "runs"}:
    the CycleGAN and epoch the pair uses, whether a curator chose it, and how many CycleGANs the pair has."""
    rows = {}
    for g in gans:
        row = rows.setdefault(g["pair"], {"pair": g["pair"], "gan": None, "runs": 0})
        row["runs"] += 1
        if g["used"]:
            row.update(gan=g["gan"].pk, epoch=g["scoring_epoch"], chosen=g["gan"].chosen_at is not None,
                       epoch_chosen=bool(g["gan"].chosen_epoch))
    return list(rows.values())
