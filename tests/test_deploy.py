"""Deployment files: docker-compose.yml refers only to things that exist, and production settings pass
`check --deploy`. (No Docker engine runs here, so the compose file is checked, not started.)"""
import importlib
import os
import shlex
import subprocess
import sys

import yaml
from django.core.management import get_commands

from curation.jobs.registry import JOB_KINDS
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _command(service):
    cmd = service.get("command", "")
    cmd = " ".join(cmd) if isinstance(cmd, list) else cmd
    if cmd.startswith("sh -c "):
        cmd = shlex.split(cmd)[2]
    return [shlex.split(part) for part in cmd.split("&&")]


def test_compose_has_the_whole_stack_with_health_checks():
    assert {"postgres", "redis", "web", "worker-cpu", "worker-gpu"} <= set(SERVICES)
    for name, service in SERVICES.items():
        assert "healthcheck" in service, f"{name} has no health check"


def test_compose_commands_refer_to_things_that_exist():
    known_queues = {kind.queue for kind in JOB_KINDS.values()} | {"cpu", "gpu"}
    checked = 0
    for name, service in SERVICES.items():
        if "build" not in service:
            continue
        assert (REPO / service["build"] / "Dockerfile").is_file()
        for argv in _command(service):
            if argv[:2] == ["python", "manage.py"]:
                assert argv[2] in get_commands(), f"{name}: no management command {argv[2]!r}"
            elif argv[0] == "gunicorn":
                module, attr = argv[1].split(":")
                assert callable(getattr(importlib.import_module(module), attr)), f"{name}: {argv[1]} not found"
            elif argv[0] == "celery":
                app = importlib.import_module(argv[argv.index("-A") + 1])
                assert hasattr(app, "celery_app"), f"{name}: no Celery app in {argv[argv.index('-A') + 1]}"
                queues = set(argv[argv.index("-Q") + 1].split(","))
                assert queues <= known_queues, f"{name}: unknown queue(s) {queues - known_queues}"
            else:
                raise AssertionError(f"{name}: unrecognised command {argv}")
            checked += 1
    assert checked >= 4


def test_gpu_worker_takes_one_gpu_one_job_at_a_time():
    gpu = SERVICES["worker-gpu"]
    argv = _command(gpu)[0]
    assert argv[argv.index("-Q") + 1] == "gpu"
    assert argv[argv.index("-c") + 1] == "1"
    assert argv[argv.index("--prefetch-multiplier") + 1] == "1"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["count"] == 1 and "gpu" in devices[0]["capabilities"]


def test_web_and_workers_share_the_media_volume():
    mounts = {name: SERVICES[name]["volumes"] for name in ("web", "worker-cpu", "worker-gpu")}
    for name, volumes in mounts.items():
        assert "media:/data" in volumes, f"{name} does not mount the shared media volume"
        assert SERVICES[name]["environment"]["FER_DATA_DIR"] == "/data"
    assert "media" in COMPOSE["volumes"]


def _production_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="fer_site.settings.production", **extra)
    return env


def test_production_settings_pass_check_deploy():
    env = _production_env(DJANGO_SECRET_KEY="k" * 20 + "-Zq8vN3xR7tW1yB5mP0cL9hJ2gF6dS4aE", DJANGO_ALLOWED_HOSTS="fer.example.org")
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_to_start_without_a_secret_key():
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, capture_output=True, text=True,
                          env=_production_env(DJANGO_ALLOWED_HOSTS="fer.example.org"))
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in done.stderr
