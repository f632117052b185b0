from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("curation", "0013_dataset_consensus_threshold")]

    operations = [
        migrations.AddField(
            model_name="image",
            name="datalab_label_quality",
            field=models.FloatField(
                blank=True, null=True,
                help_text="Datalab label score from the embedding's neighbours' labels (low = suspect)."),
        ),
        migrations.AddField(
            model_name="image",
            name="datalab_label_issue",
            field=models.BooleanField(default=False, help_text="Datalab found a label issue from neighbours."),
        ),
        migrations.AddField(
            model_name="image",
            name="datalab_outlier_score",
            field=models.FloatField(
                blank=True, null=True, help_text="Datalab outlier score of the embedding (low = atypical)."),
        ),
        migrations.AddField(
            model_name="image",
            name="datalab_outlier",
            field=models.BooleanField(default=False, help_text="Datalab called the image an outlier."),
        ),
        migrations.AddField(
            model_name="image",
            name="datalab_near_duplicate_score",
            field=models.FloatField(
                blank=True, null=True, help_text="Datalab near-duplicate score (low = a near copy of another image)."),
        ),
        migrations.AddField(
            model_name="image",
            name="datalab_near_duplicates",
            field=models.JSONField(
                blank=True, default=list, help_text="Ids of the images in Datalab's near-duplicate set with this one."),
        ),
    ]
