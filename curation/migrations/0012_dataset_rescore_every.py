from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("curation", "0011_duplicate_members")]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="rescore_every",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
