"""A dataset's health report (curation/web/health_report.py) as JSON: the figures of /datasets/<name>/health/, each
with the grid address that shows the images it counts."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.selectors import dataset_get
from curation.web.health_report import dataset_health_report


class FigureOutput(serializers.Serializer):
    n = serializers.IntegerField(help_text="How many images.")
    url = serializers.CharField(help_text="The review grid filtered to exactly these images (a path on this site).")
    filters = serializers.DictField(help_text="The grid's filter (labels by name), the same as the API's image "
                                              "list takes: GET /api/images/?dataset=NAME&<filters>.")


class WrongLabelsOutput(serializers.Serializer):
    source = serializers.CharField(allow_null=True,
                                   help_text="audit: the random audit's estimate (enough decisions); cleanlab: "
                                             "the share of scored train images cleanlab flags; null: neither yet.")
    estimate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval (audit only).")
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="Audit decisions, or scored train images.")
    wrong = serializers.FloatField(help_text="Wrong labels among them (audit: CROWDLAB-weighted where it applies).")
    text = serializers.CharField()
    url = serializers.CharField(allow_null=True, help_text="The audit's section, or the flagged images in the grid.")
    figure = FigureOutput(allow_null=True)


class IssueOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    what = serializers.CharField()
    all = FigureOutput(help_text="Every image with the issue, any status.")
    unreviewed = FigureOutput(help_text="Those still unreviewed.")


class CellOutput(serializers.Serializer):
    column = serializers.CharField()
    code = serializers.IntegerField(allow_null=True)
    n = serializers.IntegerField()
    url = serializers.CharField()
    filters = serializers.DictField()


class MatrixRowOutput(serializers.Serializer):
    code = serializers.IntegerField()
    name = serializers.CharField()
    cells = CellOutput(many=True)
    total = serializers.IntegerField()


class MatrixOutput(serializers.Serializer):
    rows = MatrixRowOutput(many=True)
    columns = serializers.ListField(child=serializers.CharField())
    pairs = serializers.ListField(child=serializers.DictField(), help_text="Off-diagonal cells, largest first.")


class ReviewedMatrixOutput(MatrixOutput):
    decided = serializers.IntegerField()
    other = serializers.ListField(child=serializers.DictField(),
                                  help_text="Decided images outside the matrix: confirmed after an earlier relabel, "
                                            "or relabelled back to their given label.")


class SuggestedMatrixOutput(MatrixOutput):
    total = serializers.IntegerField()


class ClassOutput(serializers.Serializer):
    name = serializers.CharField()
    change = serializers.IntegerField()
    before = FigureOutput(help_text="Given label, every image.")
    after = FigureOutput(help_text="Current label, excluded images left out.")


class CleaningOutput(serializers.Serializer):
    total = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    reviewed_share = serializers.FloatField(allow_null=True)
    unreviewed = FigureOutput()
    confirmed = FigureOutput()
    relabelled = FigureOutput()
    excluded = FigureOutput()


class HealthOutput(serializers.Serializer):
    dataset = serializers.CharField()
    made_at = serializers.CharField()
    images = serializers.IntegerField()
    split = serializers.DictField(child=serializers.IntegerField())
    scored_by_job = serializers.IntegerField(allow_null=True)
    duplicates_checked_by_job = serializers.IntegerField(allow_null=True)
    wrong_labels = WrongLabelsOutput()
    issues = IssueOutput(many=True)
    reviewed_confusion = ReviewedMatrixOutput(help_text="Decided images: given label against the review (columns: "
                                                        "the classes, then excluded).")
    suggested_confusion = SuggestedMatrixOutput(help_text="Unreviewed label issues: given label against the "
                                                          "classifier's suggestion.")
    classes = ClassOutput(many=True)
    cleaning = CleaningOutput()
    grid_leaves_out = serializers.CharField()


class DatasetHealthApi(APIView):
    """The dataset's health report: the estimated share of wrong labels (the random audit's, else cleanlab's, and
    which), the issues found with their counts, the confused class pairs, class balance and what cleaning has done;
    every count with the review grid's address of the images it counts. The page /datasets/<name>/health/ and
    `manage.py health_report` show the same report."""

    @extend_schema(responses=HealthOutput)
    def get(self, request, name):
        return Response(HealthOutput(dataset_health_report(dataset=dataset_get(name=name))).data)
