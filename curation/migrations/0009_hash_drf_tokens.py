"""API tokens move from DRF's authtoken (the key stored in plain text, no expiry) to django-rest-knox (a SHA-512
digest, with an expiry). Each existing key becomes a knox token with the same string, so a script's
`Authorization: Token <key>` keeps working until it expires, FER_TOKEN_TTL_HOURS after this migration. Then DRF's
table is dropped, and its migration records with it (rest_framework.authtoken is no longer installed): no token
remains stored in the clear. A database that never had the table (a new one) has nothing to convert.

Not reversible in substance: the keys cannot be recovered from their digests. Going back leaves the knox tokens."""
from django.db import migrations
from django.utils import timezone

LEGACY_TABLE = "authtoken_token"


def hash_plaintext_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS, knox_settings

    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    table = schema_editor.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {schema_editor.quote_name('key')}, user_id FROM {table}")
        rows = cursor.fetchall()
    AuthToken = apps.get_model("knox", "AuthToken")
    expiry = timezone.now() + knox_settings.TOKEN_TTL
    AuthToken.objects.bulk_create(
        [AuthToken(digest=hash_token(key), token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id, expiry=expiry)
         for key, user_id in rows],
        ignore_conflicts=True)  # a digest already there is the same token: running twice converts it once
    schema_editor.execute(f"DROP TABLE {table}")
    schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


class Migration(migrations.Migration):

    dependencies = [
        ("curation", "0008_job_parent"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop, elidable=False),
    ]
