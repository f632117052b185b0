"""Web processes never import torch, not even when a curator starts a job: validating every kind's parameters
(what the jobs page and POST /api/jobs/ do) must leave torch unimported."""
import subprocess
import sys
import textwrap

from django.conf import settings

SCRIPT = textwrap.dedent("""
    import sys, django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from curation.jobs.errors import JobParamsError
    from curation.jobs.registry import JOB_KINDS
    from curation.models import Dataset
    Dataset.objects.create(name="d", format="csv", source="/nowhere")
    params = {"dataset": "d", "pair": ["happy", "sad"], "path": "/nowhere", "format": "csv", "name": "e",
              "epochs": 1, "n": 1}
    reached = []
    for kind, job_kind in JOB_KINDS.items():
        try:
            job_kind.validate(dict(params))
        except JobParamsError:
            pass
        reached.append(kind)
    # A valid training config is checked in the web process too (a train job that passes the dataset's checks).
    from training.config import TrainConfig
    TrainConfig(arch="small_cnn", robust="eac").validate()
    print(",".join(reached))
    sys.exit(3 if "torch" in sys.modules else 0)
""")


def test_validating_job_parameters_imports_no_torch(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fer_site.settings.test",
           "FER_DATA_DIR": str(tmp_path)}  # embedded SQLite of its own, whatever the suite runs on
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 3, "validating job parameters imported torch"
    assert done.returncode == 0, done.stderr
    assert "train_cyclegan" in done.stdout
