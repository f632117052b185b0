"""A dataset's near-duplicate groups and leaks (GET, everyone) and excluding its leaked test images (POST,
curators)."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.pagination import ByIdCursor
from curation.api.permissions import IsCurator
from curation.duplicates.leaks import (
    dataset_leaks,
    exclude_leaked_test_images,
    exclude_leaking_copies,
    group_leaders,
    groups_members,
)
from curation.selectors import dataset_get


class LeakRowOutput(serializers.Serializer):
    splits = serializers.CharField(help_text="'train/test' or 'val/test'.")
    groups = serializers.IntegerField()
    test_images = serializers.IntegerField(help_text="Test images in those groups still in the test split.")
    excluded = serializers.IntegerField(help_text="Test images in those groups already excluded.")
    copies_excluded = serializers.IntegerField(help_text="Groups whose test image stays and whose train (val) copies "
                                                         "are all excluded: the leak ended the other way.")


class LeaksOutput(serializers.Serializer):
    dataset = serializers.CharField()
    checked = serializers.DictField(allow_null=True, help_text="The latest find_duplicates job; null: never run.")
    groups = serializers.IntegerField(help_text="Near-duplicate groups found.")
    images = serializers.IntegerField(help_text="Images in them.")
    within = serializers.ListField(child=serializers.DictField(), help_text="[{split, groups}] within one split.")
    across = serializers.ListField(child=serializers.DictField(), help_text="[{splits, groups}] across splits.")
    leaks = LeakRowOutput(many=True)
    leaked_test_images = serializers.IntegerField(help_text="What exclude-test would exclude.")
    test_split_hash = serializers.CharField(help_text="Today's test split hash.")
    runs_on_earlier_split = serializers.ListField(child=serializers.IntegerField(),
                                                  help_text="Runs scored on an earlier test split.")


class ExcludeLeakedOutput(serializers.Serializer):
    excluded = serializers.ListField(child=serializers.IntegerField())
    conflicts = serializers.ListField(child=serializers.IntegerField(),
                                      help_text="Images changed meanwhile, left as they are.")
    test_split_hash_before = serializers.CharField()
    test_split_hash_after = serializers.CharField()


class DatasetLeaksApi(APIView):
    """Near-duplicate groups within and across splits, and the train/test and val/test leaks with the test images
    they affect (from the latest find_duplicates job)."""

    @extend_schema(responses=LeaksOutput)
    def get(self, request, name):
        report = dataset_leaks(dataset_get(name=name))
        report.pop("examples")
        return Response(LeaksOutput(report).data)


class DatasetExcludeLeakedTestApi(APIView):
    """Exclude every test image with a train or val near-duplicate (each with its audit row). The test split
    changes and gets a new hash; runs scored before are then on an earlier test split."""

    permission_classes = [IsAuthenticated, IsCurator]

    @extend_schema(request=None, responses=ExcludeLeakedOutput)
    def post(self, request, name):
        done = exclude_leaked_test_images(dataset=dataset_get(name=name), user=request.user)
        return Response(ExcludeLeakedOutput(done).data)


class ExcludeCopiesOutput(serializers.Serializer):
    excluded = serializers.ListField(child=serializers.IntegerField(), help_text="The train and val copies excluded.")
    conflicts = serializers.ListField(child=serializers.IntegerField(),
                                      help_text="Images changed meanwhile, left as they are.")
    test_split_hash = serializers.CharField(help_text="Unchanged: the test images stay.")


class DatasetExcludeLeakingCopiesApi(APIView):
    """The other way to end the leaks: keep the test images and exclude every train or val image with a test
    near-duplicate (each with its audit row). The test split stays; runs trained before are noted in the run
    comparison as trained with copies of test images."""

    permission_classes = [IsAuthenticated, IsCurator]

    @extend_schema(request=None, responses=ExcludeCopiesOutput)
    def post(self, request, name):
        done = exclude_leaking_copies(dataset=dataset_get(name=name), user=request.user)
        return Response(ExcludeCopiesOutput(done).data)


class DuplicateMemberOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The image's id (GET /api/images/<id>/).")
    path = serializers.CharField()
    split = serializers.CharField()
    label = serializers.CharField(help_text="Its current label.")
    status = serializers.CharField()
    linked_by = serializers.CharField(help_text="The signals that linked it to its nearest fellow member, and the "
                                                "variant that matched ('phash+colour of mirror', 'of 90% crop').")
    distance = serializers.FloatField(help_text="pHash bits (of 64) to its nearest fellow member.")


class DuplicateGroupOutput(serializers.Serializer):
    group = serializers.IntegerField(help_text="The group's name: its lowest image id.")
    splits = serializers.ListField(child=serializers.CharField())
    members = DuplicateMemberOutput(many=True)


class GroupCursor(ByIdCursor):
    ordering = "group"
    page_size = 50
    max_page_size = 500


class DatasetDuplicatesApi(APIView):
    """The near-duplicate groups of the latest find_duplicates job, by group (cursor pages): each with its members'
    path, split, label, status and what linked them."""

    pagination_class = GroupCursor

    @extend_schema(responses=DuplicateGroupOutput(many=True))
    def get(self, request, name):
        dataset = dataset_get(name=name)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(group_leaders(dataset), request, view=self)
        members = groups_members(dataset, [leader.group for leader in page])
        groups = [{"group": g, "splits": sorted({m["split"] for m in ms}), "members": ms} for g, ms in members.items()]
        return paginator.get_paginated_response(DuplicateGroupOutput(groups, many=True).data)
