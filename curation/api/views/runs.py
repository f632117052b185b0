from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.fields import DatasetNameField
from curation.api.pagination import NewestFirstCursor
from curation.api.serializers import RunOutput, RunSummaryOutput
from curation.selectors import run_get, runs_list


class RunListInput(serializers.Serializer):
    dataset = DatasetNameField(required=False, help_text="Dataset name.")


class RunListApi(APIView):
    """Classifier training runs, newest first, with their test accuracy and macro F1."""

    pagination_class = NewestFirstCursor

    @extend_schema(parameters=[RunListInput], responses=RunSummaryOutput(many=True))
    def get(self, request):
        filters = RunListInput(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(runs_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(RunSummaryOutput(page, many=True).data)


class RunDetailApi(APIView):
    """One run: config, what it trained on, per-epoch history, and its test metrics (accuracy, macro F1,
    per-class precision and recall, confusion matrix with rows = true class) on the dataset's frozen test split."""

    @extend_schema(responses=RunOutput)
    def get(self, request, run_id):
        return Response(RunOutput(run_get(run_id=run_id)).data)
