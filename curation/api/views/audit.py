"""The random audit of a dataset: its share (GET everyone, PATCH curators) and the estimates from its decisions, and
the export's companion summary (the estimates beside the counts the CSV holds)."""
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.permissions import IsCurator
from curation.export import COLUMNS
from curation.models import AUDIT_SHARE_MAX
from curation.review.audit import audit_share_check, dataset_audit_estimates, dataset_audit_share_set
from curation.selectors import dataset_counts, dataset_get


class AuditShareInput(serializers.Serializer):
    audit_share = serializers.CharField(help_text=f"0-{AUDIT_SHARE_MAX:g}; 0 turns the audit off.")

    def validate_audit_share(self, value):
        try:
            return audit_share_check(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class AuditEstimatesOutput(serializers.Serializer):
    audit_share = serializers.FloatField()
    min_decisions = serializers.IntegerField(help_text="Fewer audit decisions than this give no interval.")
    decisions = serializers.IntegerField(help_text="Decided images in the random audit sample.")
    audit_cards = serializers.IntegerField(help_text="Images the queue served as audit cards.")
    overall = serializers.DictField(help_text="{n, wrong, enough, estimate, low, high, pending}: the share of wrong "
                                              "labels with its 95 % Wilson interval (only when enough).")
    per_label = serializers.ListField(child=serializers.DictField(), help_text="Per given label, as overall.")
    confusion = serializers.ListField(child=serializers.DictField(),
                                      help_text="[{given, n, reviewed: {label or 'excluded': count}}]")
    signals = serializers.ListField(child=serializers.DictField(),
                                    help_text="[{signal, n, enough, auroc, low, high, wrong}]: AUROC on the audit "
                                              "decisions with Hanley-McNeil's 95 % interval.")
    remaining = serializers.DictField(help_text="The share still wrong after the review so far.")
    crowdlab_weighted = serializers.IntegerField()
    assumptions = serializers.CharField()


class DatasetAuditApi(APIView):
    """The audit's share and its estimates: the share of wrong labels overall and per given label, the confusion
    from given to reviewed label, each signal's AUROC and the share still wrong, each with the number of audit
    decisions it rests on ("enough": false, and no interval, under min_decisions)."""

    def get_permissions(self):
        if self.request.method == "PATCH":
            return [IsAuthenticated(), IsCurator()]
        return super().get_permissions()

    @extend_schema(responses=AuditEstimatesOutput)
    def get(self, request, name):
        return Response(AuditEstimatesOutput(dataset_audit_estimates(dataset_get(name=name))).data)

    @extend_schema(request=AuditShareInput, responses=AuditEstimatesOutput)
    def patch(self, request, name):
        dataset = dataset_get(name=name)
        data = AuditShareInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset.audit_share = dataset_audit_share_set(dataset_id=dataset.pk,
                                                      audit_share=data.validated_data["audit_share"])
        return Response(AuditEstimatesOutput(dataset_audit_estimates(dataset)).data)


class ExportSummaryOutput(serializers.Serializer):
    dataset = serializers.CharField()
    made_at = serializers.DateTimeField()
    columns = serializers.ListField(child=serializers.CharField(), help_text="The export CSV's columns.")
    counts = serializers.DictField()
    audit = AuditEstimatesOutput()


class DatasetExportSummaryApi(APIView):
    """The export's companion summary: what the CSV holds (columns, counts by split, label and status) and what the
    random audit says about its labels, as JSON to keep beside the CSV."""

    @extend_schema(responses=ExportSummaryOutput)
    def get(self, request, name):
        dataset = dataset_get(name=name)
        return Response(ExportSummaryOutput({
            "dataset": dataset.name, "made_at": timezone.now(), "columns": list(COLUMNS),
            "counts": dataset_counts(dataset=dataset), "audit": dataset_audit_estimates(dataset),
        }).data)
