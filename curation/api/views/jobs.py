from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.pagination import NewestFirstCursor
from curation.api.permissions import IsCurator
from curation.api.serializers import JobOutput
from curation.classifier.params import with_default_start, with_latest_run_settings
from curation.classifier.preview import api_preview, with_default_doubtful
from curation.jobs.registry import JOB_KINDS
from curation.jobs.selectors import job_get, jobs_list
from curation.jobs.services import job_cancel, job_enqueue, job_validate
from curation.models import Job
from curation.selectors import dataset_get


class JobListInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=Job.Status.choices, required=False)
    kind = serializers.CharField(required=False)


RETRAIN = "retrain"


class JobCreateInput(serializers.Serializer):
    kind = serializers.CharField(help_text=f"One of: {', '.join(sorted(JOB_KINDS))}; or `retrain`: a "
                                           "train_classifier job with the settings of the dataset's latest finished "
                                           "run wherever params leave them out (as `manage.py retrain`), and the "
                                           "retrain form's doubtful rule where params name none (the SSIM rule "
                                           "where it flags images of the dataset, else the classifier's flags).")
    params = serializers.DictField(required=False, default=dict,
                                   help_text="The kind's parameters, as its management command takes them "
                                             "(e.g. import_dataset: path, format, name).")
    dry_run = serializers.BooleanField(
        required=False, default=False,
        help_text="true: check the parameters and answer 200 with what the job would be created with (and, for "
                  "`retrain`, the preview of what it would train on); nothing is queued.")


class RetrainPreviewOutput(serializers.Serializer):
    dataset = serializers.CharField()
    counts = serializers.DictField(
        help_text="The run's train split as selected now: train, val, test, dropped_excluded, "
                  "dropped_flagged_unconfirmed, relabelled, generated, trusted, val_reviewed (and doubtful, "
                  "relabelled_calibrated, relabel_above where they apply).")
    reduced = serializers.BooleanField()
    augmented = serializers.BooleanField()
    doubtful = serializers.CharField(help_text="The doubtful rule: ssim, classifier, either or none.")
    rule_name = serializers.CharField()
    relabel_text = serializers.CharField(help_text="The calibrated-relabel rule in words; empty without one.")
    doubtful_counts = serializers.DictField(child=serializers.IntegerField(),
                                            help_text="Unreviewed train images each doubtful rule flags now.")
    problems = serializers.ListField(
        child=serializers.DictField(),
        help_text="Where a choice would do nothing or cannot run: {code, text, ...figures}; codes "
                  "doubtful_flags_none (the rule flags nothing: reduced drops only excluded images; `others`: what "
                  "each other rule would drop) and no_generated (augmented without generated images; `generators`, "
                  "`generates`).")


class JobDryRunOutput(serializers.Serializer):
    kind = serializers.CharField(help_text="The kind the job would have (`retrain` is a train_classifier job).")
    params = serializers.DictField(help_text="The parameters it would be created with, defaults filled in.")
    preview = RetrainPreviewOutput(allow_null=True, help_text="`retrain` only (null otherwise): what the run would "
                                                              "train on, as the retrain form previews it.")


class JobsApi(APIView):
    """GET lists jobs, newest first (everyone); POST validates and enqueues one (curators only)."""

    pagination_class = NewestFirstCursor

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), IsCurator()]
        return [IsAuthenticated()]

    @extend_schema(operation_id="jobs_list", parameters=[JobListInput], responses=JobOutput(many=True))
    def get(self, request):
        filters = JobListInput(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(jobs_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(JobOutput(page, many=True, context={"request": request}).data)

    @extend_schema(operation_id="jobs_create", request=JobCreateInput,
                   responses={201: JobOutput, 200: JobDryRunOutput})
    def post(self, request):
        data = JobCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        kind, params = data.validated_data["kind"], data.validated_data["params"]
        retrain = kind == RETRAIN
        try:
            if retrain:  # the command's and the jobs page's retrain: a train_classifier job, derived from a run,
                # with the form's doubtful rule where params name none
                kind, params = "train_classifier", with_default_doubtful(
                    with_latest_run_settings({"folds": 0, **params}))
            elif kind == "train_classifier":  # the start a run names where params name none: as the command's
                params = with_default_start(dict(params))
            if data.validated_data["dry_run"]:
                clean = job_validate(kind=kind, params=params)
                preview = api_preview(dataset_get(name=clean["dataset"]), clean) if retrain else None
                return Response(JobDryRunOutput({"kind": kind, "params": clean, "preview": preview}).data)
            job = job_enqueue(kind=kind, params=params, user=request.user)
        except (ValueError, TypeError) as exc:  # JobParamsError, or a validator that met a value of a wrong type
            raise exceptions.ValidationError({"params": [str(exc)]}, code="invalid_params") from None
        return Response(JobOutput(job, context={"request": request}).data, status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutput)
    def get(self, request, job_id):
        return Response(JobOutput(job_get(job_id=job_id), context={"request": request}).data)


class JobCancelApi(APIView):
    """Ask a job to stop: a queued job is cancelled at once, a running one at its next check."""

    permission_classes = [IsAuthenticated, IsCurator]

    @extend_schema(request=None, responses=JobOutput)
    def post(self, request, job_id):
        job_get(job_id=job_id)  # 404 for an unknown id
        return Response(JobOutput(job_cancel(job_id=job_id), context={"request": request}).data)
