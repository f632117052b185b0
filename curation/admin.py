from django.contrib import admin

from curation.models import (
    Dataset,
    Image,
    Job,
    LabelChange,
    ReviewSkip,
    WorkerHeartbeat,
)


class AppendOnlyAdmin(admin.ModelAdmin):
    """Rows that are only ever added, by the services (the audit's LabelChange, ReviewSkip): the admin shows them
    and offers nothing else. Their model refuses an update or a delete anyway; offering one ended in a 500."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "format", "source", "created_at")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("path", "dataset", "split", "original_label", "label", "status", "version")
    list_filter = ("dataset", "split", "status", "label")
    search_fields = ("path",)
    readonly_fields = [f.name for f in Image._meta.fields]  # labels change only through services


@admin.register(LabelChange)
class LabelChangeAdmin(AppendOnlyAdmin):
    list_display = ("image", "action", "old_label", "new_label", "user", "seconds_spent", "created_at")
    readonly_fields = [f.name for f in LabelChange._meta.fields]


@admin.register(ReviewSkip)
class ReviewSkipAdmin(AppendOnlyAdmin):
    list_display = ("image", "user", "seconds_spent", "created_at")
    readonly_fields = [f.name for f in ReviewSkip._meta.fields]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "progress", "attempts", "message", "created_at")
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in Job._meta.fields]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "queues", "pid", "last_seen")
