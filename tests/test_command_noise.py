"""A command that queues a job on the embedded filesystem broker (the default of `make demo`) prints its job and
its progress, not kombu's "No hostname was supplied" warning: that broker has no host (issue 35)."""
import os
import sys

import pytest

from tests.conftest import REPO, Process, wait_for, worker_database_url

pytestmark = pytest.mark.slow


def test_queueing_on_the_filesystem_broker_prints_no_hostname_warning(transactional_db, tmp_path):
    from curation.models import Job

    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "labels.csv").write_text("path,label\n")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="fer_site.settings.test", DATABASE_URL=worker_database_url(),
               CELERY_BROKER_URL="filesystem://", FER_DATA_DIR=str(tmp_path / "data"), FER_IMPORT_ROOTS=str(tmp_path))
    command = Process([sys.executable, "manage.py", "import_dataset", "--format", "csv", "--name", "quiet",
                       str(tmp_path / "faces" / "labels.csv")], env=env, log_path=tmp_path / "command.log", cwd=REPO)
    try:
        wait_for(lambda: "queued on 'cpu'" in command.log() and Job.objects.exists(), timeout=60,
                 what="the job queued")
    finally:
        command.stop()
    assert "No hostname was supplied" not in command.log(), command.log()
