"""A trained CycleGAN's generators: which CycleGAN of a pair scoring, the review card and generation use (the one a
curator chose last for the pair, else the newest finished one), its two directions, the snapshot epoch they use (a
curator's chosen epoch, else the last one), the quality measured there, and the file holding its networks (the
jobs load them with curation/gans/generators.py; this module imports no torch, for web processes read it).

Scoring (curation.scoring) and generation (curation.gans.generate_handler) both read generators through here.
"""
from django.db.models import F

from curation.models import GanModel
from training.labels import CLASSES

DIRECTIONS = ("AB", "BA")
REVERSE = {"AB": "BA", "BA": "AB"}


def pair_generators(dataset, *, pair=None):
    """The CycleGAN each label pair uses, one per pair: the finished one a curator chose last for that pair
    (`chosen_at`), else the pair's newest finished one. `pair`: (a, b) label codes, either order, for that pair only.
    Scoring, the review card, generation and the retrain preview all read the pair's generators through here."""
    gans = GanModel.objects.filter(dataset=dataset, status=GanModel.Status.SUCCEEDED)
    if pair is not None:
        gans = gans.filter(source_label__in=pair, target_label__in=pair)
    seen, out = set(), []
    for gan in gans.order_by(F("chosen_at").desc(nulls_last=True), "-id"):
        key = frozenset((gan.source_label, gan.target_label))
        if key not in seen:
            seen.add(key)
            out.append(gan)
    return out


def pair_generator(dataset, a, b):
    """The CycleGAN the pair (a, b) uses (pair_generators), or None."""
    gans = pair_generators(dataset, pair=(a, b))
    return gans[0] if gans else None


def direction_labels(gan, direction):
    """(source, target) of a generator direction: AB is G_A (source -> target), BA is G_B (target -> source)."""
    return (gan.source_label, gan.target_label) if direction == "AB" else (gan.target_label, gan.source_label)


def direction_name(gan, direction):
    """"happy->sad": the classes a generator direction translates from and into."""
    source, target = direction_labels(gan, direction)
    return f"{CLASSES[source]}->{CLASSES[target]}"


def generator_snapshot(gan):
    """(checkpoint path relative to MEDIA_ROOT, epoch) of the generators scoring uses: the chosen snapshot, or the
    last epoch's state."""
    if gan.chosen_epoch:
        entry = next((e for e in gan.losses if e["epoch"] == gan.chosen_epoch and e.get("generators")), None)
        if entry:
            return entry["generators"], gan.chosen_epoch
    return gan.checkpoint, gan.epoch


def snapshot_quality(gan):
    """(epoch, {"AB": ..., "BA": ...}) of the quality instrument (curation.gans.handler) at the snapshot scoring uses;
    {} where it was not measured there."""
    _, epoch = generator_snapshot(gan)
    entry = next((e for e in gan.losses or [] if e.get("epoch") == epoch), {})
    return epoch, entry.get("quality") or {}


def snapshot_path(gan, epoch):
    """The file holding the generators of one snapshot epoch (a scoring chunk names the epoch its parent planned
    with, which may no longer be the chosen one)."""
    path, current = generator_snapshot(gan)
    if epoch == current:
        return path
    entry = next((e for e in gan.losses if e["epoch"] == epoch and e.get("generators")), None)
    if entry:
        return entry["generators"]
    if epoch == gan.epoch:
        return gan.checkpoint
    raise FileNotFoundError(f"CycleGAN {gan.pk} has no generators saved at epoch {epoch}")
