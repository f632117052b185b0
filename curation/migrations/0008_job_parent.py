"""Job.parent: the job a job is a part of (a score_chunk's score_ambiguity job), until now params {"parent": id}."""
import django.db.models.deletion
from django.db import migrations, models


def parent_from_params(apps, schema_editor):
    """The foreign key takes over from params["parent"], which the chunks lose. A chunk whose parent was deleted is
    deleted too, as the CASCADE now does."""
    Job = apps.get_model("curation", "Job")
    existing = set(Job.objects.values_list("pk", flat=True))
    for job in Job.objects.filter(params__has_key="parent").only("pk", "params"):
        params = dict(job.params)
        parent = params.pop("parent")
        if parent not in existing:
            job.delete()
            continue
        Job.objects.filter(pk=job.pk).update(parent_id=parent, params=params)


def parent_into_params(apps, schema_editor):
    Job = apps.get_model("curation", "Job")
    for job in Job.objects.filter(parent__isnull=False).only("pk", "params", "parent_id"):
        Job.objects.filter(pk=job.pk).update(params={"parent": job.parent_id, **job.params})


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0007_transform_ssim_into'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='parent',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='children', to='curation.job'),
        ),
        migrations.RunPython(parent_from_params, parent_into_params),
    ]
