from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.fields import MAX_INT32, DatasetNameField, FiniteFloatField, LabelField
from curation.api.pagination import ByIdCursor
from curation.api.serializers import ImageOutput, LabelChangeOutput
from curation.models import Image, ImageSelection, Run
from curation.review.card import review_card_transformations
from curation.review.decisions import decision_make
from curation.review.services import ACTIONS
from curation.selectors import SIGNALS, STATUS_ANY, STATUS_KEPT, image_detail, image_get, images_list


class ImageFilterFields(serializers.Serializer):
    """The filters of curation.selectors.images_filter, shared by the image list and the review queue."""

    split = serializers.ChoiceField(choices=Image.Split.choices, required=False)
    label = LabelField(required=False, help_text="Current label; with `run`, the label the image had when the run "
                                                 "trained.")
    flagged = serializers.BooleanField(required=False, allow_null=True, default=None)
    signal = serializers.ChoiceField(choices=list(SIGNALS), required=False,
                                     help_text="ssim: flagged by the SSIM rule; classifier: cleanlab label issue; "
                                               "both; either; datalab_label: the embedding's neighbours carry "
                                               "another label; datalab_outlier; datalab_duplicate; duplicate: in a "
                                               "find_duplicates group; test_leak: a test image (not excluded) "
                                               "whose group has a train or val image that is not.")
    min_suspicion = FiniteFloatField(required=False)
    max_suspicion = FiniteFloatField(required=False)
    run = serializers.PrimaryKeyRelatedField(queryset=Run.objects.all(), required=False,
                                             help_text="A classifier run: only its test images (see predicted).")
    predicted = LabelField(required=False, help_text="With run: what the run predicted.")
    suggested = LabelField(required=False, help_text="The classifier's suggested label at the latest scoring.")
    selection = serializers.PrimaryKeyRelatedField(queryset=ImageSelection.objects.all(), required=False,
                                                   help_text="A stored selection (the dataset map's lasso): only its "
                                                             "images.")

    def validate(self, data):
        low, high = data.get("min_suspicion"), data.get("max_suspicion")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"max_suspicion": f"the suspicion range {low} to {high} is empty."})
        if "predicted" in data and "run" not in data:
            raise serializers.ValidationError({"predicted": "predicted needs a run."})
        return data


class ImageListInput(ImageFilterFields):
    dataset = DatasetNameField(required=False, help_text="Dataset name.")
    original_label = LabelField(required=False)
    status = serializers.ChoiceField(choices=[*Image.Status.choices, (STATUS_KEPT, "any but excluded"),
                                              (STATUS_ANY, "any")], required=False)


class ImageListApi(APIView):
    pagination_class = ByIdCursor

    @extend_schema(parameters=[ImageListInput], responses=ImageOutput(many=True))
    def get(self, request):
        filters = ImageListInput(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(images_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(ImageOutput(page, many=True).data)


class ScoresOutput(serializers.Serializer):
    ambiguity = serializers.FloatField(allow_null=True, help_text="Highest SSIM against a CycleGAN transformation.")
    suspicion = serializers.FloatField(allow_null=True, help_text="Fused score that orders the review queue.")
    flagged = serializers.BooleanField(help_text="Flagged ambiguous by scoring.")


class TransformationOutput(serializers.Serializer):
    gan_id = serializers.IntegerField(help_text="The CycleGAN.")
    generator = serializers.ChoiceField(choices=["G_A", "G_B"], help_text="G_A: source -> target; G_B: back.")
    target_label = LabelField()
    epoch = serializers.IntegerField(help_text="The generator snapshot that scored the image.")
    ssim = serializers.FloatField(help_text="SSIM between the image and this generator's output.")
    ssim_into = serializers.FloatField(allow_null=True,
                                       help_text="SSIM under the pair's other generator (into the image's label), "
                                                 "which should leave the image alone: the image's baseline.")
    z = serializers.FloatField(allow_null=True, help_text="ssim - ssim_into, standardised over the generator's "
                                                          "source class.")
    file_url = serializers.CharField(allow_null=True, help_text="The generated image, where the generate job made "
                                                                "one for this CycleGAN and image; else null.")
    in_use = serializers.BooleanField(help_text="Whether this CycleGAN at this epoch is what its pair's scoring uses "
                                                "now (a curator's choice on the generators page, else the newest); "
                                                "rows an earlier scoring left come after these.")


class ImageDetailOutput(ImageOutput):
    scores = serializers.SerializerMethodField()
    transformations = serializers.SerializerMethodField(
        help_text="Each CycleGAN generator that scored the image (those scoring uses now first, each group highest z "
                  "first), with its SSIM and z and the generated image where one exists. Filled by ambiguity scoring; empty until then.")
    history = LabelChangeOutput(source="label_changes", many=True, help_text="Label changes, oldest first.")

    class Meta(ImageOutput.Meta):
        fields = [*ImageOutput.Meta.fields, "scores", "transformations", "history"]
        read_only_fields = fields

    @extend_schema_field(ScoresOutput)
    def get_scores(self, image) -> dict:
        return ScoresOutput(image).data

    @extend_schema_field(TransformationOutput(many=True))
    def get_transformations(self, image) -> list:
        return TransformationOutput(review_card_transformations(image), many=True).data


class ImageDetailApi(APIView):
    @extend_schema(responses=ImageDetailOutput)
    def get(self, request, image_id):
        return Response(ImageDetailOutput(image_detail(image_id=image_id)).data)


class ImageDecisionInput(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS))
    label = LabelField(required=False, help_text="The new label; required for relabel.")
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32,
                                       help_text="The image version the decision was made on; required except "
                                                 "for skip. A stale one gets 409.")
    seconds_spent = FiniteFloatField(required=False, min_value=0, max_value=86400)
    override_lease = serializers.BooleanField(
        required=False, default=False,
        help_text="Curators only: decide even though another reviewer holds the image's lease (without it, 409).")

    def validate(self, data):
        if data["action"] == "relabel" and "label" not in data:
            raise serializers.ValidationError({"label": "relabel needs the new label."})
        if data["action"] != "skip" and "version" not in data:
            raise serializers.ValidationError({"version": f"{data['action']} needs the version it was made on."})
        return data


class ImageDecisionOutput(serializers.Serializer):
    action = serializers.CharField()
    image = ImageOutput()
    change_id = serializers.IntegerField(allow_null=True, help_text="The LabelChange recorded; null for skip and "
                                                                    "for a vote that did not close its round.")
    vote_id = serializers.IntegerField(allow_null=True, help_text="On datasets needing several reviews: the vote.")
    outcome = serializers.ChoiceField(choices=["applied", "skipped", "pending", "disputed"],
                                      help_text="pending: more votes needed; disputed: sent to the curators.")


class ImageDecisionApi(APIView):
    @extend_schema(request=ImageDecisionInput, responses=ImageDecisionOutput)
    def post(self, request, image_id):
        data = ImageDecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        result, _ = decision_make(user=request.user, image_id=image_id, **data.validated_data)
        image = image_get(image_id=image_id)
        return Response(ImageDecisionOutput({
            "action": result.action, "image": image, "outcome": result.outcome,
            "change_id": result.change.pk if result.change else None,
            "vote_id": result.vote.pk if result.vote else None}).data)
