from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_cache_table(sender, using, verbosity=1, **kwargs):
    """`manage.py migrate` alone makes the database cache usable (FER_CACHE_URL=db://, the default without a Redis
    broker): createcachetable does nothing for other caches or when the table exists, so every migrate runs it."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=max(verbosity - 1, 0))


class CurationConfig(AppConfig):
    name = "curation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="curation.create_cache_table")
        # The stored panel figures follow every label change, in whichever process makes it (web, worker, command).
        # Imported here: Django loads this module before the models the receivers' modules import.
        from curation.duplicates.leaks import leaks_on_label_changed
        from curation.signals import label_changed
        from curation.truth import truth_on_label_changed

        label_changed.connect(leaks_on_label_changed, dispatch_uid="curation.leaks_on_label_changed")
        label_changed.connect(truth_on_label_changed, dispatch_uid="curation.truth_on_label_changed")
