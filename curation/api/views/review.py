from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.fields import DatasetNameField
from curation.api.serializers import ClaimedImageOutput, ImageOutput
from curation.api.views.images import ImageFilterFields
from curation.models import Image
from curation.review.services import image_claim_next, review_undo
from curation.selectors import STATUS_ANY, STATUS_KEPT, dataset_get, image_get


class ReviewNextInput(ImageFilterFields):
    dataset = DatasetNameField(help_text="Dataset name.")
    status = serializers.ChoiceField(choices=[*Image.Status.choices, (STATUS_KEPT, "any but excluded"),
                                              (STATUS_ANY, "any")], required=False,
                                     help_text="Default unreviewed; another status (kept: any but excluded; or any) "
                                               "is a second pass over decided images (never your own decisions).")


class ReviewNextOutput(serializers.Serializer):
    image = ClaimedImageOutput(allow_null=True, help_text="null: nothing left to review under these filters.")


class ReviewNextApi(APIView):
    """Claim the next image to review under a lease (the same as the browser queue's): most suspicious first.
    Asking again while the lease is live returns the same image with the lease renewed. Decide it with its
    `version` at /api/images/{id}/decision/."""

    @extend_schema(request=ReviewNextInput, responses=ReviewNextOutput)
    def post(self, request):
        data = ReviewNextInput(data=request.data)
        data.is_valid(raise_exception=True)
        filters = dict(data.validated_data)
        dataset = dataset_get(name=filters.pop("dataset"))
        image = image_claim_next(user=request.user, dataset=dataset, filters=filters)
        return Response(ReviewNextOutput({"image": image}).data)


class ReviewUndoOutput(serializers.Serializer):
    image = ImageOutput()
    change_id = serializers.IntegerField(allow_null=True, help_text="The LabelChange (action undo) recorded; null "
                                                                    "when an open vote was withdrawn.")
    undone_change_id = serializers.IntegerField(allow_null=True, help_text="The decision taken back.")
    withdrawn_vote_id = serializers.IntegerField(allow_null=True, help_text="The vote withdrawn (datasets needing "
                                                                            "several reviews).")


class ReviewUndoApi(APIView):
    """Take back your latest decision that still stands; repeated undo walks further back. The undo is itself a
    recorded change. 409 when someone changed the image since, or when there is nothing to undo."""

    @extend_schema(request=None, responses=ReviewUndoOutput)
    def post(self, request):
        change, undone = review_undo(user=request.user)
        return Response(ReviewUndoOutput({
            "image": image_get(image_id=undone.image_id), "change_id": change.pk if change else None,
            "undone_change_id": undone.pk if change else None, "withdrawn_vote_id": None if change else undone.pk,
        }).data)
