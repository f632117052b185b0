"""The dataset map's data (GET, everyone signed in: the compact binary of curation/maps/store.py) and a stored
selection of its images (POST, everyone signed in: the grid then shows exactly them)."""
from urllib.parse import urlencode

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.maps import store
from curation.maps.selections import SelectionRefused, image_selection_create
from curation.maps.params import embeddings_source
from curation.selectors import dataset_get


class DatasetMapApi(APIView):
    """The dataset's map as application/octet-stream, 12 bytes a train image: a 16-byte header (b"FMAP", uint32
    version 1, uint32 n, uint32 0), then uint32 ids, uint16 x, uint16 y (one scale for both axes, the wider spanning 0..65535), uint8 label,
    uint8 suggested (255: none), uint8 suspicion (round(s * 254); 255: not scored), uint8 status (index into
    unreviewed, confirmed, relabelled, excluded), each an array of n, little-endian. Headers: X-Map-Method,
    X-Map-Run (the run whose embeddings it projects), X-Map-Current (false: the embeddings changed since; run
    map_dataset again). 404 while the dataset has no map."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="the map, binary")})
    def get(self, request, name):
        dataset = dataset_get(name=name)
        stored = store.map_read(dataset)
        if stored is None:
            raise NotFound(f"dataset {dataset.name} has no map yet: run map_dataset (python manage.py map_dataset "
                           f"--dataset {dataset.name})")
        meta = stored[2]
        response = HttpResponse(store.map_payload(dataset, stored), content_type="application/octet-stream")
        response["X-Map-Method"] = meta["method"]
        response["X-Map-Run"] = str(meta["embeddings"]["run"])
        response["X-Map-Current"] = "true" if store.map_is_current(meta, embeddings_source(dataset)[1]) else "false"
        response["Cache-Control"] = "private, no-store"  # labels and statuses change with every review
        return response


class SelectionInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.JSONField(), allow_empty=True,
                                help_text="Image ids of the dataset.")
    source = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                   help_text="What picked them, in words (shown above the grid).")


class SelectionOutput(serializers.Serializer):
    selection = serializers.IntegerField()
    images = serializers.IntegerField()
    grid = serializers.CharField(help_text="The review grid showing exactly these images, any status.")


class DatasetMapSelectionApi(APIView):
    """Store a selection of the dataset's images (the map's lasso or box) and answer the grid's address that shows
    exactly them. 400 names the first id that is not an image of the dataset; nothing is stored then."""

    @extend_schema(request=SelectionInput, responses={201: SelectionOutput})
    def post(self, request, name):
        dataset = dataset_get(name=name)
        data = SelectionInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            selection = image_selection_create(dataset=dataset, image_ids=data.validated_data["ids"],
                                               user=request.user, source=data.validated_data.get("source", ""))
        except SelectionRefused as exc:
            raise ValidationError({"ids": [str(exc)]}) from None
        query = urlencode({"dataset": dataset.name, "status": "any", "selection": selection.pk})
        grid = f"{reverse('review_grid')}?{query}"
        return Response(SelectionOutput({"selection": selection.pk, "images": selection.images.count(),
                                         "grid": grid}).data, status=status.HTTP_201_CREATED)
