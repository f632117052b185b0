"""One dataset resolver (curation.selectors.dataset_resolve): a dataset named wrongly, or left out where there are
several, gets the same words from every command, the job API and the review filter, naming the datasets there are."""
import html
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import Job
from tests.factories import DatasetFactory


def _refused(*command):
    with pytest.raises(CommandError) as caught:
        call_command(*command, stdout=io.StringIO(), stderr=io.StringIO())
    return str(caught.value)


def test_an_unknown_or_missing_dataset_name_gets_one_message_everywhere(as_reviewer, curator_api):
    DatasetFactory(name="pets")
    DatasetFactory(name="faces")
    unknown = "dataset 'nope' does not exist (datasets: faces, pets)"
    for command in ("verify_labels", "find_duplicates", "map_dataset", "train_classifier", "score_ambiguity",
                    "register_truth"):
        extra = ("truth.csv",) if command == "register_truth" else ()
        assert _refused(command, "--dataset", "nope", *extra) == unknown, command
    for kind in ("map_dataset", "find_duplicates", "train_classifier"):
        answer = curator_api.post("/api/jobs/", {"kind": kind, "params": {"dataset": "nope"}}, format="json")
        assert answer.status_code == 400 and answer.json()["detail"].endswith(f"params: {unknown}"), kind
    page = as_reviewer.get("/review/grid/", {"dataset": "nope"}).content.decode()
    assert unknown in html.unescape(page)
    missing = "give --dataset NAME (datasets: faces, pets)"
    for command in ("find_duplicates", "map_dataset", "train_classifier"):
        assert _refused(command) == missing, command
    assert not Job.objects.exists()
