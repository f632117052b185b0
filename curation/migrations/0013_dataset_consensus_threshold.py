import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("curation", "0012_dataset_rescore_every")]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="consensus_threshold",
            field=models.FloatField(
                blank=True, null=True,
                validators=[django.core.validators.MinValueValidator(0.0),
                            django.core.validators.MaxValueValidator(1.0)]),
        ),
    ]
