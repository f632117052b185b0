"""Every command that reads or writes the product's tables, run on a database without them (a fresh data folder
whose user skipped `migrate`), stops before it starts and names the command that fixes it: no 'no such table'
traceback half-way through, nothing written."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

COMMANDS = Path(REPO) / "curation" / "management" / "commands"
# Commands that make their own tables or touch none.
NO_DATABASE = {"make_synthetic_faces", "demo", "restore"}


def minimal_args(tmp):
    """Arguments that get each command past argument parsing (the check runs after it)."""
    return {
        "backup": [str(tmp / "backup")],
        "bench_cleaning": ["--out", str(tmp / "bench"), "--inline", "--n", "40"],
        "drf_create_token": ["someone"],
        "find_duplicates": ["--inline"],
        "generate_images": ["--pair", "happy", "sad", "--n", "4", "--inline"],
        "health_report": ["--out", str(tmp / "health.html")],
        "import_dataset": [str(tmp / "labels.csv"), "--format", "csv", "--name", "faces", "--inline"],
        "import_predictions": [str(tmp / "predictions.csv"), "--out-of-sample", "--inline"],
        "jobs": [],
        "map_dataset": ["--method", "pca"],
        "pretrain_ssl": ["--inline"],
        "register_truth": ["--dataset", "faces", str(tmp / "truth.csv")],
        "retrain": ["--reduced", "--inline"],
        "review_settings": ["faces", "--reviews-required", "2"],
        "revoke_tokens": ["--expired"],
        "score_ambiguity": ["--inline"],
        "score_report": ["--truth", str(tmp / "truth.csv")],
        "train_classifier": ["--inline"],
        "train_cyclegan": ["--pair", "happy", "sad", "--inline"],
        "verify_labels": [],
        "verify_jobs": [],
    }


SCRIPT = """
import json, os
from django.core.management import call_command
from django.core.management.base import CommandError
out = {}
for name, args in json.loads(os.environ["COMMAND_ARGS"]).items():
    try:
        call_command(name, *args)
        out[name] = "ran"
    except CommandError as exc:
        out[name] = "CommandError: " + str(exc)
    except Exception as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def test_every_database_command_on_an_unmigrated_database_names_migrate(tmp_path):
    commands = sorted(p.stem for p in COMMANDS.glob("*.py") if p.stem != "__init__")
    args = minimal_args(tmp_path)
    unlisted = set(commands) - NO_DATABASE - set(args)
    assert not unlisted, f"new command(s) {sorted(unlisted)}: add their arguments here or to NO_DATABASE"

    env = dict(os.environ, FER_DATA_DIR=str(tmp_path / "data"), COMMAND_ARGS=json.dumps(args))
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = {name: said for name, said in outcome.items()
             if not (said.startswith("CommandError:") and "run `python manage.py migrate` first" in said)}
    assert not wrong, wrong
    assert not (tmp_path / "backup").exists() and not (tmp_path / "bench").exists()
    assert not (tmp_path / "health.html").exists()
