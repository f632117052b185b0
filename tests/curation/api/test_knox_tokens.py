"""API tokens are django-rest-knox's: stored as a digest, never in the clear; they expire (FER_TOKEN_TTL_HOURS) and
can be revoked (logout, logout-all, revoke_tokens); drf_create_token still prints one for scripts; and migration
0009 turns DRF's plain-text keys into knox tokens that keep working under the same string."""
import importlib
import io
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from curation.tokens import issue_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _stored_anywhere(text):
    """Every cell of every table in the database that contains `text`, as (table, row)."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            hits += [(table, row) for row in cursor.fetchall() if any(text in str(cell) for cell in row)]
    return hits


def _printed_token(out):
    match = re.fullmatch(r"Generated token (\S+) for user (\S+)\n", out)
    assert match, out
    return match.group(1)


def test_a_token_from_the_endpoint_works_and_is_not_stored_in_the_clear(reviewer):
    answer = APIClient().post("/api/auth/token/", {"username": "rita", "password": "pw"}, format="json")
    assert answer.status_code == 200, answer.content
    token = answer.json()["token"]
    assert _client(token).get("/api/datasets/").status_code == 200
    row = AuthToken.objects.get(user=reviewer)
    assert row.digest != token and len(row.digest) == 128  # SHA-512, hex
    assert _stored_anywhere(token) == []
    assert _stored_anywhere(row.digest)  # the scan does find what is stored


def test_tokens_expire_after_the_setting(reviewer, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=2)}
    before = timezone.now()
    answer = APIClient().post("/api/auth/token/", {"username": "rita", "password": "pw"}, format="json")
    expiry = AuthToken.objects.get(user=reviewer).expiry
    assert before + timedelta(hours=2) <= expiry <= timezone.now() + timedelta(hours=2)
    assert answer.json()["expiry"].startswith(expiry.strftime("%Y-%m-%dT%H:%M"))


def test_an_expired_token_is_refused_with_401_saying_so(reviewer):
    row, token = issue_token(reviewer)
    client = _client(token)
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() + timedelta(seconds=30))
    assert client.get("/api/datasets/").status_code == 200  # not yet
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    refused = client.get("/api/datasets/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_expired"
    assert refused.json()["detail"].startswith("Token expired at ") and "drf_create_token" in refused.json()["detail"]
    assert refused["WWW-Authenticate"] == "Token"


def test_logout_revokes_the_token_in_use_only(reviewer):
    _, first = issue_token(reviewer)
    _, second = issue_token(reviewer)
    assert _client(first).post("/api/auth/logout/").status_code == 204
    refused = _client(first).get("/api/datasets/")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    assert "revoked" in refused.json()["detail"]
    assert _client(second).get("/api/datasets/").status_code == 200


def test_logout_all_revokes_every_token_of_the_user_and_no_one_elses(reviewer):
    tokens = [issue_token(reviewer)[1] for _ in range(3)]
    _, others = issue_token(UserFactory(username="olga"))
    answer = _client(tokens[0]).post("/api/auth/logout-all/")
    assert answer.status_code == 200 and answer.json() == {"revoked": 3}
    assert [_client(t).get("/api/datasets/").status_code for t in tokens] == [401, 401, 401]
    assert _client(others).get("/api/datasets/").status_code == 200


def test_logout_all_from_the_browser_session(reviewer):
    _, token = issue_token(reviewer)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(reviewer)
    assert browser.post("/api/auth/logout-all/").status_code == 403  # a session request needs its CSRF token
    assert _client(token).get("/api/datasets/").status_code == 200
    browser = APIClient()
    browser.force_login(reviewer)
    assert browser.post("/api/auth/logout-all/").json() == {"revoked": 1}
    assert _client(token).get("/api/datasets/").status_code == 401


def test_revoke_tokens_command(reviewer):
    _, token = issue_token(reviewer)
    _, others = issue_token(UserFactory(username="olga"))
    with pytest.raises(CommandError, match="No such user: nobody. Nothing was revoked"):
        call_command("revoke_tokens", "rita", "nobody", stdout=io.StringIO())
    assert _client(token).get("/api/datasets/").status_code == 200
    out = io.StringIO()
    call_command("revoke_tokens", "rita", stdout=out)
    assert out.getvalue() == "rita: revoked 1 token\n"
    assert _client(token).get("/api/datasets/").status_code == 401
    assert _client(others).get("/api/datasets/").status_code == 200


def test_revoke_tokens_expired_deletes_only_expired_rows(reviewer):
    old, _ = issue_token(reviewer)
    AuthToken.objects.filter(pk=old.pk).update(expiry=timezone.now() - timedelta(minutes=1))
    _, live = issue_token(UserFactory(username="olga"))  # another user's: rita's own new token would purge it
    out = io.StringIO()
    call_command("revoke_tokens", "--expired", stdout=out)
    assert out.getvalue() == "expired: deleted 1 token\n"
    assert not AuthToken.objects.filter(pk=old.pk).exists()
    assert _client(live).get("/api/datasets/").status_code == 200


def test_drf_create_token_prints_a_working_token_once(reviewer):
    out, err = io.StringIO(), io.StringIO()
    call_command("drf_create_token", "rita", stdout=out, stderr=err)
    token = _printed_token(out.getvalue())
    assert "expires at" in err.getvalue() and "one time it is shown" in err.getvalue()
    assert _stored_anywhere(token) == []
    assert _client(token).get("/api/datasets/").status_code == 200
    # Each call is a new token (the old one cannot be shown again); --reset revokes the others.
    call_command("drf_create_token", "rita", stdout=(again := io.StringIO()), stderr=io.StringIO())
    assert _printed_token(again.getvalue()) != token
    assert _client(token).get("/api/datasets/").status_code == 200
    call_command("drf_create_token", "rita", "--reset", stdout=(reset := io.StringIO()), stderr=io.StringIO())
    assert _client(token).get("/api/datasets/").status_code == 401
    assert _client(_printed_token(reset.getvalue())).get("/api/datasets/").status_code == 200


def test_drf_create_token_ttl_and_its_refusals(reviewer):
    call_command("drf_create_token", "rita", "--ttl-hours", "1", stdout=io.StringIO(), stderr=io.StringIO())
    expiry = AuthToken.objects.get(user=reviewer).expiry
    assert timedelta(minutes=59) < expiry - timezone.now() <= timedelta(hours=1)
    with pytest.raises(CommandError, match="user nobody does not exist"):
        call_command("drf_create_token", "nobody", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="--ttl-hours: 0 hours: a token lives between 1 and 8760 hours"):
        call_command("drf_create_token", "rita", "--ttl-hours", "0", stdout=io.StringIO(), stderr=io.StringIO())
    assert AuthToken.objects.count() == 1


# --- migration 0009: DRF's plain-text keys become knox tokens --------------------------------------------------------

LEGACY_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # a DRF authtoken key: 40 hex characters


@pytest.mark.django_db(transaction=True)  # the migration drops a table: a schema editor outside a transaction
def test_migration_turns_a_plaintext_drf_token_into_a_hashed_one_that_still_works(settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=5)}
    user = UserFactory(username="scripted")
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:  # DRF's table as rest_framework.authtoken left it, and its records
        cursor.execute(f"CREATE TABLE {qn('authtoken_token')} ({qn('key')} varchar(40) PRIMARY KEY, "
                       f"created varchar(40) NOT NULL, user_id integer NOT NULL UNIQUE)")
        cursor.execute(f"INSERT INTO {qn('authtoken_token')} VALUES (%s, %s, %s)",
                       [LEGACY_KEY, "2025-01-01 00:00:00", user.pk])
        cursor.execute("INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                       ["authtoken", "0004_alter_tokenproxy_options", timezone.now()])
    assert _client(LEGACY_KEY).get("/api/datasets/").status_code == 401  # knox does not read DRF's table
    assert _stored_anywhere(LEGACY_KEY)

    migration = importlib.import_module("curation.migrations.0009_hash_drf_tokens")
    with connection.schema_editor() as editor:
        migration.hash_plaintext_tokens(apps, editor)

    assert _client(LEGACY_KEY).get("/api/datasets/").status_code == 200  # the same string, in the same header
    assert _stored_anywhere(LEGACY_KEY) == []
    assert "authtoken_token" not in connection.introspection.table_names()
    with connection.cursor() as cursor:  # gone with its table: an older checkout's migrate would make it again
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = %s", ["authtoken"])
        assert cursor.fetchone()[0] == 0
    row = AuthToken.objects.get(user=user)
    assert timedelta(hours=4, minutes=59) < row.expiry - timezone.now() <= timedelta(hours=5)
    with connection.schema_editor() as editor:  # again, or on a new database: nothing to do
        migration.hash_plaintext_tokens(apps, editor)
    assert AuthToken.objects.count() == 1
