"""The random audit slice of the review queue: a share per dataset, each image's place in the audit order, and
which images and decisions are audit ones (curation/review/audit.py)."""

import curation.models
import django.core.validators
from django.conf import settings
from django.db import migrations, models


def _audit_keys(apps, schema_editor):
    """Existing images get a key each (AddField gave them all one value): uniform on [0, 1), drawn by the database."""
    table = apps.get_model("curation", "Image")._meta.db_table
    draw = "random()" if schema_editor.connection.vendor == "postgresql" else "(abs(random()) % 1000000007) / 1000000007.0"
    schema_editor.execute(f"UPDATE {table} SET audit_key = {draw}")


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0014_image_datalab'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='audit_share',
            field=models.FloatField(default=0.05, validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(0.5)]),
        ),
        migrations.AddField(
            model_name='image',
            name='audit',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='image',
            name='audit_key',
            field=models.FloatField(default=curation.models.audit_key_draw),
        ),
        migrations.RunPython(_audit_keys, migrations.RunPython.noop),
        migrations.AddField(
            model_name='labelchange',
            name='audit',
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['dataset', 'status', 'original_label', 'audit_key'], name='image_audit_order'),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(condition=models.Q(('audit', True)), fields=['dataset', 'original_label', 'audit_key'], name='image_audit_drawn'),
        ),
    ]
