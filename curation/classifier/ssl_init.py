"""`--init ssl:JOB_ID`: a run starts from the backbone a `pretrain_ssl` job saved (classifier/pretrain_handler.py).
Only a pretraining that succeeded names weights; the checks here run where the job's parameters are validated, so a
bad start is refused before anything is queued. No torch: web processes validate too."""
from pathlib import Path

from django.conf import settings

from curation.jobs.errors import JobParamsError
from curation.models import Job

KIND = "pretrain_ssl"


def ssl_job_weights(job_id):
    """(the pretraining Job, its weights file) for `--init ssl:ID`; JobParamsError names why there is none: no such
    pretraining, or one that has not finished (queued, running, cancelled, failed), or a finished one whose file
    is gone."""
    job = Job.objects.filter(pk=job_id, kind=KIND).first()
    if job is None:
        raise JobParamsError(f"init 'ssl:{job_id}': there is no pretrain_ssl job {job_id} (ssl:ID names one)")
    if job.status != Job.Status.SUCCEEDED:
        why = {Job.Status.CANCELLED: "it was cancelled and left no weights",
               Job.Status.FAILED: "it failed and left no weights"}.get(job.status, "it has not finished yet")
        raise JobParamsError(f"init 'ssl:{job_id}': pretraining job {job_id} is {job.status}: {why}; only a "
                             f"pretraining that succeeded can start a run")
    path = Path(settings.MEDIA_ROOT) / (job.result or {}).get("weights", "")
    if not (job.result or {}).get("weights") or not path.is_file():
        raise JobParamsError(f"init 'ssl:{job_id}': pretraining job {job_id}'s weights file is missing from the "
                             f"media folder; run pretrain_ssl again")
    return job, path


def check_ssl_fits(job, arch, size):
    """Refuse a run whose classifier is not the one the pretraining trained (its arch; for seed_cnn, whose dense
    layers depend on it, its size too), naming both."""
    p = job.params
    if p["arch"] != arch or (arch == "seed_cnn" and int(p["size"]) != int(size)):
        raise JobParamsError(f"init 'ssl:{job.pk}' pretrained {p['arch']} at {p['size']} px, but this run trains "
                             f"{arch} at {size} px: give --arch {p['arch']} --size {p['size']}, or pretrain that "
                             f"classifier")
