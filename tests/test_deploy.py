"""Deployment files: docker-compose.yml refers only to things that exist, production settings pass `check --deploy`,
and the compose services' own commands and health checks work (run here without Docker, which is not available:
gunicorn, the worker and nginx as processes, against PostgreSQL and Redis)."""
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

from curation.jobs.registry import JOB_KINDS
from tests.conftest import REPO, wait_for
from tests.images import image_bytes
from tests.production import (SECRET_KEY, VENV_BIN, HttpClient, Process, collected_static, free_port,
                              production_password, wait_for_port)

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _command(service):
    cmd = service.get("command", "")
    cmd = " ".join(cmd) if isinstance(cmd, list) else cmd
    if cmd.startswith("sh -c "):
        cmd = shlex.split(cmd)[2]
    return [shlex.split(part) for part in cmd.split("&&")]


def test_compose_has_the_whole_stack_with_health_checks():
    assert {"postgres", "redis", "nginx", "web", "worker-cpu", "worker-gpu"} <= set(SERVICES)
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


def test_nginx_fronts_the_web_service_and_reads_media_only():
    nginx, web = SERVICES["nginx"], SERVICES["web"]
    assert "media:/data:ro" in nginx["volumes"]
    assert nginx["environment"]["FER_MEDIA_ROOT"] == web["environment"]["FER_DATA_DIR"] + "/media"
    assert "ports" not in web and nginx["ports"] == ["8000:80"]
    template = (REPO / "deploy" / "nginx.conf.template").read_text()
    internal = re.search(r"location (\S+) \{\s*internal;", template)
    assert internal and internal[1] == web["environment"]["FER_MEDIA_ACCEL_REDIRECT"]
    assert web["environment"]["FER_TRUSTED_PROXIES"] == "${FER_TRUSTED_PROXIES:-1}"


def test_the_health_check_sends_a_host_the_site_allows():
    spec = importlib.util.spec_from_file_location("healthcheck", REPO / "deploy" / "healthcheck.py")
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    assert healthcheck.allowed_host("fer.example.org, other.example.org") == "fer.example.org"
    assert healthcheck.allowed_host(".example.org") == "example.org"
    assert healthcheck.allowed_host("*") == "localhost"
    assert healthcheck.allowed_host("") == "localhost"


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


# --- The compose stack's own commands, without Docker -----------------------------------------------------------
# Each service's command and health check run as compose would run them, with the environment compose gives them from
# the documented .env (DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS only), adapted to this machine: the test run's
# PostgreSQL and Redis instead of the `postgres` and `redis` services, a temporary FER_DATA_DIR (the `media` volume),
# the static files the image's build step collects, and free ports instead of 8000 and 80.

DOTENV = {"DJANGO_SECRET_KEY": SECRET_KEY, "DJANGO_ALLOWED_HOSTS": "fer.example.org"}
SITE = "https://fer.example.org"  # what the outside TLS proxy the docs describe would be reached at
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value, env):
    """Compose's variable interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""
    def sub(match):
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", ":?") and not value or op in ("-", "?") and value is None:
            if op.endswith("?"):
                raise AssertionError(f"compose refuses to start: {name}: {arg}")
            return arg
        return value or ""
    return _VARIABLE.sub(sub, str(value))


def service_env(name, **adapted):
    """The container's environment: the image's ENV, the service's `environment` after interpolation, then the
    adaptations to this machine."""
    env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "FER_DATA_DIR": "/data"}
    env.update({key: interpolate(value, DOTENV) for key, value in SERVICES[name].get("environment", {}).items()})
    env.update(adapted)
    return env


def compose_argv(value, ports=()):
    """A command or a health check `test` as a process argv, ports changed ("8000" -> a free one)."""
    if isinstance(value, list):
        form, *rest = value
        argv = {"CMD": rest, "CMD-SHELL": ["sh", "-c", " ".join(rest)]}.get(form, value)
    else:
        argv = shlex.split(value)
    argv = [interpolate(part, DOTENV) for part in argv]
    for old, new in ports:
        argv = [part.replace(old, new) for part in argv]
    return argv


def health_check(name, env, ports=()):
    """Run the service's health check `test` as compose does, up to its `retries`; the last attempt's result."""
    check = SERVICES[name]["healthcheck"]
    argv = compose_argv(check["test"], ports)
    for _ in range(int(check.get("retries", 3))):
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            break
    return done


def _needs_postgres_and_redis():
    from django.db import connection

    broker = settings.CELERY_BROKER_URL
    if connection.vendor != "postgresql" or not broker.startswith("redis://"):
        # CI=true makes conftest refuse to run without them, so this only skips outside CI.
        pytest.skip("the compose stack's test runs on PostgreSQL and Redis: set DATABASE_URL=postgres://... and "
                    "CELERY_BROKER_URL=redis://...")
    return broker


def render_nginx_config(tmp, env):
    """What the nginx image does at start: its templates rendered with the container's environment (envsubst of
    the variables that are set), included by a main configuration like the image's own /etc/nginx/nginx.conf."""
    volumes = SERVICES["nginx"]["volumes"]
    source, target = next(v.split(":")[:2] for v in volumes if v.split(":")[1].startswith("/etc/nginx/templates/"))
    text = (REPO / source).read_text()
    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], m[0]), text)
    (tmp / "conf.d").mkdir(parents=True)
    (tmp / "conf.d" / Path(target).name.removesuffix(".template")).write_text(text)
    temp_paths = "".join(f"{kind}_temp_path {tmp}/{kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp / "nginx.conf").write_text(
        # As root, workers would run as nobody, who cannot enter pytest's private temporary folders.
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\nerror_log {tmp}/error.log notice;\npid {tmp}/nginx.pid;\n"
        + "events { worker_connections 64; }\n"
        + "http {\ninclude /etc/nginx/mime.types;\ndefault_type application/octet-stream;\n"
        + f"access_log {tmp}/access.log;\nsendfile on;\nkeepalive_timeout 65;\n{temp_paths}"
        + f"include {tmp}/conf.d/*.conf;\n}}\n")
    return tmp / "nginx.conf"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """web (migrate, then gunicorn), worker-cpu and, where nginx is installed, nginx; stopped at the end. (The
    tests that use it ask for transactional_db as well: pytest-django makes the test database only for those.)"""
    from tests.conftest import worker_database_url

    broker = _needs_postgres_and_redis()
    tmp = tmp_path_factory.mktemp("compose")
    data = tmp / "data"
    face = image_bytes(seed=7)
    for name in ("datasets/faces/happy/0001.png", "datasets/faces/happy/a b.png"):
        (data / "media" / name).parent.mkdir(parents=True, exist_ok=True)
        (data / "media" / name).write_bytes(face)
    web_port, nginx_port = free_port(), free_port()
    machine = dict(DATABASE_URL=worker_database_url(), CELERY_BROKER_URL=broker, FER_DATA_DIR=str(data),
                   FER_STATIC_ROOT=str(collected_static(tmp_path_factory)),
                   FER_CACHE_KEY_PREFIX=os.environ.get("FER_CACHE_KEY_PREFIX", "fer"))
    web_ports = [("0.0.0.0:8000", f"127.0.0.1:{web_port}"), (":8000", f":{web_port}")]
    processes = []
    try:
        env = service_env("web", **machine)
        web = Process(compose_argv(SERVICES["web"]["command"], web_ports), env=env, log_path=tmp / "web.log")
        processes.append(web)
        worker_env = service_env("worker-cpu", HOSTNAME=socket.gethostname(), **machine)
        worker = Process(compose_argv(SERVICES["worker-cpu"]["command"]), env=worker_env,
                         log_path=tmp / "worker.log")
        processes.append(worker)
        wait_for_port(web_port, web)
        running = {"web": (web, env, web_ports), "worker-cpu": (worker, worker_env, ()), "face": face,
                   "nginx": None, "nginx_port": nginx_port}
        assert "nginx" in SERVICES, "docker-compose.yml has no nginx service in front of gunicorn"
        if NGINX:
            nginx_env = service_env("nginx", **{"FER_NGINX_PORT": str(nginx_port),
                                                "FER_WEB_UPSTREAM": f"127.0.0.1:{web_port}",
                                                "FER_MEDIA_ROOT": str(data / "media")})
            conf = render_nginx_config(tmp / "nginx", nginx_env)
            argv = [NGINX, "-e", str(tmp / "nginx" / "error.log"), "-p", str(tmp / "nginx"),
                    "-c", str(conf), "-g", "daemon off;"]
            checked = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, timeout=60)
            assert checked.returncode == 0, checked.stderr
            nginx = Process(argv, env=nginx_env, log_path=tmp / "nginx.log")
            processes.append(nginx)
            wait_for_port(nginx_port, nginx)
            running["nginx"] = (nginx, nginx_env, ())
        yield running
    finally:
        for process in processes:
            process.stop()


@pytest.mark.slow
@pytest.mark.worker
def test_compose_web_and_worker_pass_their_health_checks_with_the_documented_env(stack, transactional_db):
    web, env, ports = stack["web"]
    done = health_check("web", env, ports)
    assert done.returncode == 0, f"web health check: {done.stdout}{done.stderr}\n{web.log(last=4000)}"
    worker, env, ports = stack["worker-cpu"]
    # Compose gives the worker 5 checks 30 s apart; here, its first check waits until the worker has said it is up.
    from curation.models import WorkerHeartbeat

    def started():
        assert worker.alive(), worker.log(last=4000)
        return WorkerHeartbeat.objects.filter(name__startswith="cpu@").exists()

    wait_for(started, timeout=150, interval=0.5, what="the worker's first heartbeat")
    done = health_check("worker-cpu", env, ports)
    assert done.returncode == 0, f"worker health check: {done.stdout}{done.stderr}\n{worker.log(last=4000)}"
    assert web.alive() and worker.alive()


@pytest.mark.slow
@pytest.mark.worker
def test_compose_nginx_serves_media_to_signed_in_users_only(stack, transactional_db):
    if stack["nginx"] is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but nginx is not installed (.ci/run installs it)", pytrace=False)
        pytest.skip("nginx is not installed (apt-get install nginx); the web and worker half ran")
    nginx, env, ports = stack["nginx"]
    done = health_check("nginx", env, ports)
    assert done.returncode == 0, f"nginx health check: {done.stdout}{done.stderr}\n{nginx.log(last=4000)}"

    from django.contrib.auth import get_user_model

    get_user_model().objects.create(username="rita", password=production_password("a long pass phrase"))
    # As the outside TLS proxy would send it on: the site's host name, and the scheme the client used.
    outside = {"X-Forwarded-Proto": "https"}
    anonymous = HttpClient(stack["nginx_port"], host="fer.example.org", headers=outside)
    reviewer = HttpClient(stack["nginx_port"], host="fer.example.org", headers=outside)
    reviewer.log_in("rita", "a long pass phrase", origin=SITE)

    face = stack["face"]
    for path in ("/media/datasets/faces/happy/0001.png", "/media/datasets/faces/happy/a%20b.png"):
        got = reviewer.get(path)
        assert (got.status, got.header("Content-Type")) == (200, "image/png"), (path, got.status, got.headers)
        assert got.body == face
        assert "private" in got.header("Cache-Control") and got.header("X-Accel-Redirect") is None
        assert got.header("X-Content-Type-Options") == "nosniff"
        refused = anonymous.get(path)
        assert refused.status == 302 and refused.header("Location").startswith("/login/"), refused.status
        assert refused.body != face
    # The internal location is nginx's alone; from outside it does not exist.
    assert anonymous.get("/protected-media/datasets/faces/happy/0001.png").status == 404
    assert reviewer.get("/protected-media/datasets/faces/happy/0001.png").status == 404
    assert reviewer.get("/media/datasets/../../../etc/passwd").status in {400, 404}
    # Pages and static files come through nginx from gunicorn (WhiteNoise).
    assert reviewer.get("/review/").status == 200
    assert anonymous.get("/static/css/site.css").status == 200
