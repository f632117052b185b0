import math

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.scoring.calibration import threshold_calibration
from curation.selectors import dataset_get


class CalibrationInput(serializers.Serializer):
    precision = serializers.FloatField(required=False, default=0.5,
                                       help_text="The share of flagged images that should be wrong, in (0, 1].")

    def validate_precision(self, value):
        if not (math.isfinite(value) and 0 < value <= 1):
            raise serializers.ValidationError(f"precision must be a number in (0, 1], not {value}")
        return value


class CalibrationRowOutput(serializers.Serializer):
    threshold = serializers.FloatField(help_text="Images scoring at or above it are flagged.")
    label = serializers.CharField(help_text="'all', or the class (the label the images came with).")
    flagged = serializers.IntegerField(help_text="Reviewed images it flags.")
    wrong = serializers.IntegerField(help_text="Of those, relabelled or excluded by reviewers.")
    precision = serializers.FloatField(allow_null=True, help_text="wrong / flagged; null when nothing is flagged.")
    recall = serializers.FloatField(allow_null=True, help_text="Share of the wrong ones it flags.")


def _suggestion_fields():
    fields = {"reviewed": serializers.IntegerField(), "wrong": serializers.IntegerField()}
    for signal in ("ambiguity", "suspicion"):
        fields.update({
            f"{signal}_threshold": serializers.FloatField(
                allow_null=True, help_text=f"Lowest {signal} threshold reaching the precision; null with a reason."),
            f"{signal}_precision": serializers.FloatField(allow_null=True),
            f"{signal}_recall": serializers.FloatField(allow_null=True),
            f"{signal}_flagged": serializers.IntegerField(allow_null=True),
            f"{signal}_reason": serializers.CharField(allow_blank=True),
        })
    return fields


CalibrationSuggestionOutput = type("CalibrationSuggestionOutput", (serializers.Serializer,), _suggestion_fields())


class CalibrationJobParamsOutput(serializers.Serializer):
    dataset = serializers.CharField()
    threshold = serializers.FloatField()
    class_thresholds = serializers.DictField(child=serializers.FloatField())


class CurrentThresholdsOutput(serializers.Serializer):
    job = serializers.IntegerField(allow_null=True, help_text="The latest finished scoring job; null: never scored.")
    threshold = serializers.FloatField(help_text="Its threshold (0.85, the default, if never scored).")
    class_thresholds = serializers.DictField(child=serializers.FloatField())


class CalibrationOutput(serializers.Serializer):
    dataset = serializers.CharField()
    precision = serializers.FloatField()
    reviewed = serializers.IntegerField(help_text="Reviewed train images (confirmed, relabelled or excluded).")
    wrong = serializers.IntegerField(help_text="Of those, relabelled or excluded.")
    needs = serializers.CharField(help_text="What a class needs before a threshold is suggested for it.")
    current = CurrentThresholdsOutput(help_text="The thresholds of the latest scoring job.")
    suggested = serializers.DictField(child=CalibrationSuggestionOutput(), help_text="By 'all' and class name.")
    ambiguity = CalibrationRowOutput(many=True, help_text="Per threshold on the SSIM ambiguity and per class.")
    suspicion = CalibrationRowOutput(many=True, help_text="Per threshold on the suspicion and per class.")
    command = serializers.CharField(allow_null=True, help_text="score_ambiguity with the suggested thresholds.")
    job_params = CalibrationJobParamsOutput(allow_null=True, help_text="The same as score_ambiguity job params.")


class DatasetCalibrationApi(APIView):
    """Threshold calibration from reviews: for each threshold on the SSIM ambiguity and on the suspicion, per class
    and overall, how many reviewed train images it flags, the share reviewers relabelled or excluded (precision)
    and the share of those it catches (recall); the lowest threshold per class that reaches `precision`, and the
    score_ambiguity command that applies them. Curators and reviewers may read it."""

    @extend_schema(parameters=[CalibrationInput], responses=CalibrationOutput)
    def get(self, request, name):
        params = CalibrationInput(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        report = threshold_calibration(dataset=dataset_get(name=name), precision=params.validated_data["precision"])
        return Response(CalibrationOutput(report).data)
