"""Writes the pages make besides jobs (which go through curation.jobs.services)."""
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.models import GanModel


class EpochNotSaved(ValueError):
    """The epoch has no saved generators, so scoring could not load it."""


def gan_choose_epoch(*, gan_id, epoch):
    """Make scoring, the review card and generation use this CycleGAN for its label pair (over the pair's other
    runs: the latest choice wins, curation.gans.snapshots.pair_generators), with the generators saved at `epoch`
    (None: the last epoch's). The CycleGAN must have finished, and the epoch must be one whose generators were kept (a
    snapshot epoch) and whose file is still there; otherwise EpochNotSaved names what can be chosen, and nothing
    changes. Locks the GanModel row while it checks and writes.

    Raises GanModel.DoesNotExist."""
    with transaction.atomic():
        gan = GanModel.objects.select_for_update().get(pk=gan_id)
        if gan.status != GanModel.Status.SUCCEEDED:
            raise EpochNotSaved(f"CycleGAN {gan.pk} is {gan.status}: only a CycleGAN that finished training can be "
                                f"chosen")
        if epoch is not None:
            saved = {e["epoch"]: e["generators"] for e in gan.losses or [] if e.get("generators")}
            if epoch not in saved:
                choices = ", ".join(map(str, sorted(saved))) or "none yet"
                raise EpochNotSaved(f"epoch {epoch} of CycleGAN {gan.pk} has no saved generators; "
                                    f"snapshot epochs: {choices}")
            if not (Path(settings.MEDIA_ROOT) / saved[epoch]).exists():
                raise EpochNotSaved(f"the generators of epoch {epoch} of CycleGAN {gan.pk} are missing on disk "
                                    f"({saved[epoch]})")
        now = timezone.now()
        GanModel.objects.filter(pk=gan.pk).update(chosen_epoch=epoch, chosen_at=now)
    gan.chosen_epoch, gan.chosen_at = epoch, now
    return gan
