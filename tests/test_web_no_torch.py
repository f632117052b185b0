"""Web processes never import torch, nor any job kind's handler (the worker's code, which may import torch at its
top): not when they load every page and API view, not when they build the API schema, not when a curator starts a
job (validating every kind's parameters, what the jobs page and POST /api/jobs/ do)."""
import subprocess
import sys
import textwrap

from django.conf import settings

SCRIPT = textwrap.dedent("""
    import sys, django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)

    # Every URL pattern's view, the error handlers, and the API schema (which reads every API view's serializers).
    from django.urls import URLPattern, URLResolver, get_resolver

    def views(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from views(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                yield pattern.callback

    resolver = get_resolver()
    loaded = [view for view in views(resolver.url_patterns) if callable(view)]
    for status in (400, 403, 404, 500):
        resolver.resolve_error_handler(status)
    from drf_spectacular.generators import SchemaGenerator
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["paths"], "the API schema has no paths"

    # Validating every kind's parameters, as the jobs page and the API do before anything is queued.
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
    print(f"views {len(loaded)}")
    print(",".join(reached))
    # No job kind's handler: neither a module the registry names as one, nor any of ours named as handlers are.
    named = {job_kind.handler.rpartition(".")[0] for job_kind in JOB_KINDS.values()}
    handlers = sorted(name for name in sys.modules if name in named or (
        name.startswith("curation.") and name.rpartition(".")[2].endswith("handler")))
    print(f"handlers {','.join(handlers) or '-'}")
    sys.exit(3 if "torch" in sys.modules else 4 if handlers else 0)
""")


def test_loading_every_view_and_validating_job_parameters_imports_no_torch(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fer_site.settings.test",
           "FER_DATA_DIR": str(tmp_path)}  # embedded SQLite of its own, whatever the suite runs on
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 3, "loading the views or validating job parameters imported torch"
    assert done.returncode != 4, f"the web process imported job handlers: {done.stdout.split('handlers ')[1]}"
    assert done.returncode == 0, done.stderr
    assert "train_cyclegan" in done.stdout
    assert int(done.stdout.split("views ")[1].split()[0]) > 50, done.stdout  # the URL patterns were walked
