"""Dataset.guidelines: a curator's guidelines per class, shown to reviewers on the review card."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0009_hash_drf_tokens'),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='guidelines',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
