"""Output serializers shared by several operations. Labels are canonical class names."""
from django.conf import settings
from rest_framework import serializers

from curation.api.fields import LabelField
from curation.models import Image, Job, LabelChange, Run
from curation.roles import paths_hidden, text_paths_hidden, user_is_curator
from training.labels import CLASSES


class ImageOutput(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    original_label = LabelField()
    label = LabelField()
    reviewed_by = serializers.CharField(source="reviewed_by.username", default=None, allow_null=True)
    file_url = serializers.SerializerMethodField()
    datalab_near_duplicates = serializers.ListField(child=serializers.IntegerField(), read_only=True,
                                                    help_text="Ids of the images in Datalab's near-duplicate set.")

    class Meta:
        model = Image
        fields = ["id", "dataset", "path", "file_url", "split", "original_label", "label", "status", "version",
                  "ambiguity", "suspicion", "flagged", "reviewed_by", "reviewed_at", "width", "height",
                  "datalab_label_quality", "datalab_label_issue", "datalab_outlier_score", "datalab_outlier",
                  "datalab_near_duplicate_score", "datalab_near_duplicates"]
        read_only_fields = fields

    def get_file_url(self, image) -> str:
        return settings.MEDIA_URL + image.file


class LabelChangeOutput(serializers.ModelSerializer):
    old_label = LabelField()
    new_label = LabelField()
    user = serializers.CharField(source="user.username", default=None, allow_null=True)

    class Meta:
        model = LabelChange
        fields = ["id", "action", "old_label", "new_label", "old_status", "new_status", "user", "note",
                  "seconds_spent", "audit", "created_at"]
        read_only_fields = fields


class ClaimedImageOutput(ImageOutput):
    claim_expires_at = serializers.DateTimeField()

    class Meta(ImageOutput.Meta):
        fields = [*ImageOutput.Meta.fields, "claim_expires_at"]
        read_only_fields = fields


class JobOutput(serializers.ModelSerializer):
    """A job as the requester may see it: curators whole; reviewers without the server's paths (params such as an
    import's source folder, and paths quoted in the result, message or error), which needs the request in the
    serializer's context (without one, paths are hidden)."""

    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)

    def to_representation(self, job):
        data = super().to_representation(job)
        if "curator" not in self.context:  # asked once per response, not per job of a list
            self.context["curator"] = user_is_curator(getattr(self.context.get("request"), "user", None))
        if not self.context["curator"]:
            data["params"], data["result"] = paths_hidden(data["params"]), paths_hidden(data["result"])
            data["message"], data["error"] = text_paths_hidden(data["message"]), text_paths_hidden(data["error"])
        return data

    class Meta:
        model = Job
        fields = ["id", "kind", "params", "queue", "status", "progress", "message", "attempts", "max_attempts",
                  "cancel_requested", "result", "error", "created_by", "created_at", "queued_at", "started_at",
                  "heartbeat_at", "finished_at"]
        read_only_fields = fields


class RunSummaryOutput(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    test_accuracy = serializers.SerializerMethodField()
    test_macro_f1 = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "dataset", "job", "status", "arch", "reduced", "augmented", "folds", "best_epoch",
                  "test_accuracy", "test_macro_f1", "test_split_hash", "snapshot_hash", "created_by", "created_at",
                  "finished_at", "source"]
        read_only_fields = fields

    def get_test_accuracy(self, run) -> float | None:
        return (run.test_metrics or {}).get("accuracy")

    def get_test_macro_f1(self, run) -> float | None:
        return (run.test_metrics or {}).get("macro_f1")


class RunOutput(RunSummaryOutput):
    classes = serializers.SerializerMethodField(help_text="Class names in the order of the per-class metrics and "
                                                          "of the confusion matrix's rows (true) and columns.")
    plots = serializers.SerializerMethodField()

    class Meta(RunSummaryOutput.Meta):
        fields = [*RunSummaryOutput.Meta.fields, "config", "selection", "history", "test_metrics", "classes",
                  "plots", "error"]
        read_only_fields = fields

    def get_classes(self, run) -> list[str]:
        return list(CLASSES)

    def get_plots(self, run) -> dict[str, str]:
        return {name: settings.MEDIA_URL + path for name, path in (run.plots or {}).items()}
