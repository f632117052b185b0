"""The score_chunk job's parameters (a part of a score_ambiguity job, which enqueues it: chunk_handler.py)."""
from curation.gans.snapshots import DIRECTIONS
from curation.jobs.errors import JobParamsError
from curation.models import GanModel


def validate_chunk_params(params):
    def whole(name):
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise JobParamsError(f"{name} must be a non-negative integer, not {value!r}")
        return value

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
    return {"gan": gan.pk, "direction": params["direction"], "epoch": epoch, "ids": ids}
