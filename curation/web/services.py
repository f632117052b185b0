"""Writes the pages make besides jobs (which go through curation.jobs.services)."""
from pathlib import Path

from django.conf import settings
from django.db import transaction

from curation.models import GanModel


class EpochNotSaved(ValueError):
    """The epoch has no saved generators, so scoring could not load it."""


def gan_choose_epoch(*, gan_id, epoch):
    """Make scoring use the generators saved at `epoch` (None: the last epoch's). The epoch must be one whose
    generators were kept (a snapshot epoch) and whose file is still there; otherwise EpochNotSaved names the epochs
    that can be chosen, and nothing changes. Locks the GanModel row while it checks and writes.

    Raises GanModel.DoesNotExist."""
    with transaction.atomic():
        gan = GanModel.objects.select_for_update().get(pk=gan_id)
        if epoch is not None:
            saved = {e["epoch"]: e["generators"] for e in gan.losses or [] if e.get("generators")}
            if epoch not in saved:
                choices = ", ".join(map(str, sorted(saved))) or "none yet"
                raise EpochNotSaved(f"epoch {epoch} of CycleGAN {gan.pk} has no saved generators; "
                                    f"snapshot epochs: {choices}")
            if not (Path(settings.MEDIA_ROOT) / saved[epoch]).exists():
                raise EpochNotSaved(f"the generators of epoch {epoch} of CycleGAN {gan.pk} are missing on disk "
                                    f"({saved[epoch]})")
        GanModel.objects.filter(pk=gan.pk).update(chosen_epoch=epoch)
    gan.chosen_epoch = epoch
    return gan
