"""The generator networks of a CycleGAN's snapshot, loaded for the jobs that run them (scoring chunks, generation,
the cleaning benchmark). Worker side: torch at the top; web processes read snapshots through snapshots.py only."""
from pathlib import Path

import torch
from django.conf import settings

from curation.gans.snapshots import snapshot_path
from gan.cyclegan import GanConfig
from gan.networks import ResnetGenerator

# The last generators loaded in this process: a parent running many chunks of one direction loads them once.
_loaded = {}


def load_generator(gan, direction, epoch, device):
    """(generator network in eval mode on device, image size) of one direction at one snapshot."""
    path = Path(settings.MEDIA_ROOT) / snapshot_path(gan, epoch)
    key = (str(path), path.stat().st_mtime_ns, direction, str(device))  # the file itself, not ids a database reuses
    if key not in _loaded:
        state = torch.load(path, weights_only=True, map_location="cpu")
        cfg = GanConfig.from_dict(state["config"])
        net = ResnetGenerator(cfg.ngf, cfg.blocks, upsample=cfg.upsample).to(device)
        net.load_state_dict(state["G_A" if direction == "AB" else "G_B"])
        if len(_loaded) >= 2:  # the two generators of one pair: a chunk uses both
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = (net.eval(), cfg.size)
    return _loaded[key]
