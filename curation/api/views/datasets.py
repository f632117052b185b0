from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.throttles import ExportThrottle
from curation.export import csv_chunks
from curation.models import Dataset, Image
from curation.roles import shown_to
from curation.selectors import (
    dataset_counts,
    dataset_export_rows,
    dataset_get,
    dataset_reviewer_names,
    dataset_summaries,
)


class DatasetListOutput(serializers.ModelSerializer):
    n_images = serializers.IntegerField()
    n_train = serializers.IntegerField()
    n_val = serializers.IntegerField()
    n_test = serializers.IntegerField()
    n_reviewed = serializers.IntegerField()

    class Meta:
        model = Dataset
        fields = ["name", "format", "created_at", "n_images", "n_train", "n_val", "n_test", "n_reviewed"]
        read_only_fields = fields


class DatasetListApi(APIView):
    @extend_schema(responses=DatasetListOutput(many=True))
    def get(self, request):
        return Response(DatasetListOutput(dataset_summaries(), many=True).data)


class DatasetCountsOutput(serializers.Serializer):
    total = serializers.IntegerField()
    split = serializers.DictField(child=serializers.IntegerField())
    label = serializers.DictField(child=serializers.IntegerField(), help_text="Every canonical class, by name.")
    status = serializers.DictField(child=serializers.IntegerField())


class DatasetDetailOutput(serializers.ModelSerializer):
    counts = DatasetCountsOutput()

    def to_representation(self, dataset):
        """`source`, the folder it was imported from, is a server path: "<server path>" for reviewers."""
        data = super().to_representation(dataset)
        user = getattr(self.context.get("request"), "user", None)
        data["source"] = shown_to(user, {"source": data["source"]})["source"]
        return data

    class Meta:
        model = Dataset
        fields = ["name", "format", "source", "split_seed", "test_fraction", "val_fraction", "created_at", "counts"]
        read_only_fields = fields


class DatasetDetailApi(APIView):
    @extend_schema(responses=DatasetDetailOutput)
    def get(self, request, name):
        dataset = dataset_get(name=name)
        dataset.counts = dataset_counts(dataset=dataset)
        return Response(DatasetDetailOutput(dataset, context={"request": request}).data)


class CSVRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept `Accept: text/csv`; the CSV itself is streamed by the view."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return str((data or {}).get("detail", "")) if isinstance(data, dict) else str(data)


class DatasetExportInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=Image.Status.choices, required=False,
                                     help_text="Only images with this status.")
    exclude_excluded = serializers.BooleanField(required=False, default=False,
                                                help_text="1: leave out excluded images.")


class DatasetExportApi(APIView):
    """The cleaned labels of a dataset as CSV, streamed row by row (columns: path, split, original_label, label,
    status, ambiguity, suspicion, reviewed_by, reviewed_at)."""

    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    throttle_classes = [ExportThrottle]

    @extend_schema(parameters=[DatasetExportInput], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, name):
        params = DatasetExportInput(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        dataset = dataset_get(name=name)
        rows = dataset_export_rows(dataset=dataset, **params.validated_data)
        chunks = (chunk.encode() for chunk in csv_chunks(rows, usernames=dataset_reviewer_names(dataset=dataset)))
        response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="{dataset.name}-labels-{stamp}.csv"'
        return response
