from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.fields import LabelField
from curation.api.serializers import ClaimedImageOutput, ImageOutput
from curation.models import Image
from curation.review.services import image_claim_next, review_undo
from curation.selectors import dataset_get, image_get


class ReviewNextInput(serializers.Serializer):
    dataset = serializers.CharField(help_text="Dataset name.")
    label = LabelField(required=False, help_text="Only images with this current label.")
    split = serializers.ChoiceField(choices=Image.Split.choices, required=False)
    status = serializers.ChoiceField(choices=Image.Status.choices, required=False,
                                     help_text="Default unreviewed; another status is a second pass over decided "
                                               "images (never your own decisions).")
    flagged = serializers.BooleanField(required=False, allow_null=True, default=None)
    min_suspicion = serializers.FloatField(required=False)


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
    change_id = serializers.IntegerField(help_text="The LabelChange (action undo) recorded.")
    undone_change_id = serializers.IntegerField(help_text="The decision taken back.")


class ReviewUndoApi(APIView):
    """Take back your latest decision that still stands; repeated undo walks further back. The undo is itself a
    recorded change. 409 when someone changed the image since, or when there is nothing to undo."""

    @extend_schema(request=None, responses=ReviewUndoOutput)
    def post(self, request):
        change, undone = review_undo(user=request.user)
        return Response(ReviewUndoOutput(
            {"image": image_get(image_id=change.image_id), "change_id": change.pk, "undone_change_id": undone.pk}).data)
