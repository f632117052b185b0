"""The token gaps: a password change revokes the user's API tokens (whichever way it is changed); a token lives 1
hour to 1 year, and outside that nothing is issued and the error names the bound; the token response is never
cached."""
import io
import os
import subprocess
import sys

import pytest
from django.contrib.auth.forms import SetPasswordForm
from django.core.management import CommandError, call_command
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from curation.tokens import issue_token
from tests.conftest import REPO
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a much longer passphrase 42"


def _works(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/datasets/").status_code == 200


def test_set_password_and_save_revokes_the_users_tokens_only(reviewer):
    token, other = issue_token(reviewer)[1], issue_token(UserFactory(username="otto"))[1]
    reviewer.set_password(NEW_PASSWORD)
    reviewer.save()
    assert not _works(token) and _works(other)


def test_the_password_forms_revoke_the_users_tokens(reviewer):
    token = issue_token(reviewer)[1]
    form = SetPasswordForm(reviewer, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert form.is_valid(), form.errors
    form.save()
    assert not _works(token)


def test_a_password_change_in_the_admin_revokes_the_users_tokens(reviewer):
    token = issue_token(reviewer)[1]
    admin = Client()
    admin.force_login(UserFactory(username="ada", is_staff=True, is_superuser=True))
    answer = admin.post(f"/admin/auth/user/{reviewer.pk}/password/",
                        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    assert answer.status_code == 302
    assert not _works(token)


def test_logging_in_or_other_saves_keep_the_tokens(reviewer):
    token = issue_token(reviewer)[1]
    assert APIClient().post("/api/auth/token/", {"username": "rita", "password": "pw"}).status_code == 200
    Client().post("/login/", {"username": "rita", "password": "pw"})  # saves last_login
    reviewer.first_name = "Rita"
    reviewer.save()
    assert _works(token) and AuthToken.objects.filter(user=reviewer).count() == 2


def test_the_token_response_is_not_cached(reviewer):
    answer = APIClient().post("/api/auth/token/", {"username": "rita", "password": "pw"})
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"] and answer["Pragma"] == "no-cache"


@pytest.mark.parametrize("hours", ["100000000", "8761", "0", "-3"])
def test_drf_create_token_refuses_a_ttl_outside_an_hour_to_a_year(reviewer, hours):
    with pytest.raises(CommandError, match=rf"--ttl-hours: {hours} hours: .*between 1 and 8760 hours"):
        call_command("drf_create_token", "rita", "--ttl-hours", hours, stdout=io.StringIO(), stderr=io.StringIO())
    assert AuthToken.objects.count() == 0


def test_drf_create_token_takes_a_year(reviewer):
    call_command("drf_create_token", "rita", "--ttl-hours", "8760", stdout=io.StringIO(), stderr=io.StringIO())
    assert AuthToken.objects.count() == 1


def test_drf_create_token_out_of_bounds_is_one_line_no_traceback(db):
    done = subprocess.run([sys.executable, "manage.py", "drf_create_token", "nobody", "--ttl-hours", "100000000"],
                          cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "fer_site.settings.test"})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "between 1 and 8760 hours" in done.stderr


@pytest.mark.parametrize("hours", ["0", "8761"])
def test_the_ttl_setting_is_bounded_too(hours):
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "DJANGO_SETTINGS_MODULE": "fer_site.settings.test",
                                          "FER_TOKEN_TTL_HOURS": hours})
    assert done.returncode != 0
    assert f"FER_TOKEN_TTL_HOURS={hours}" in done.stderr and "between 1 and 8760 hours" in done.stderr
