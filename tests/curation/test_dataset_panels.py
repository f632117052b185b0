"""The dataset page's panels that appear only where they have something to say: the known truth (a registered
truth file) and how reviewers judged the classifier's suggested labels (the calibration a relabel rule uses)."""
from django.urls import reverse

from curation.models import Image
from curation.services import image_label_change
from curation.truth import truth_register
from tests.factories import DatasetFactory, ImageFactory


def _page(client, name):
    response = client.get(reverse("dataset", args=[name]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_known_truth_panel_shows_only_where_a_truth_file_was_registered(as_reviewer, user, tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"  # truth files live under DATA_DIR: a run before this one left its own there
    ds = DatasetFactory(name="known")
    wrong = [ImageFactory(dataset=ds, label=1, original_label=1, suspicion=0.9 - k / 100) for k in range(3)]
    right = [ImageFactory(dataset=ds, label=2, original_label=2, suspicion=0.5 - k / 100) for k in range(4)]
    assert 'id="known-truth"' not in _page(as_reviewer, "known")

    truth = tmp_path / "truth.csv"
    truth.write_text("path,true_label\n" + "".join(f"{i.path},sad\n" for i in wrong)
                     + "".join(f"{i.path},sad\n" for i in right))
    truth_register(dataset=ds, source=truth)
    image_label_change(image_id=wrong[0].pk, action="relabel", label=2, expected_version=1, user=user)
    page = _page(as_reviewer, "known")
    assert 'id="known-truth"' in page
    assert "<strong>3</strong> have wrong labels" in page  # the queue's first 7: the three wrong ones
    assert "Reviewers have fixed <strong>1</strong> of the 3 wrong" in page


def test_the_suggestion_panel_says_how_often_reviewers_chose_the_suggestion(as_reviewer, user):
    ds = DatasetFactory(name="suggested")
    ImageFactory(dataset=ds)
    assert 'id="relabels"' not in _page(as_reviewer, "suggested")  # nothing scored: nothing to say
    for k in range(4):
        image = ImageFactory(dataset=ds, label=1, original_label=1, suspicion=0.95, classifier_suggested_label=2)
        if k < 3:
            action = {"action": "relabel", "label": 2} if k < 2 else {"action": "confirm"}
            image_label_change(image_id=image.pk, expected_version=1, user=user, **action)
    page = _page(as_reviewer, "suggested")
    assert 'id="relabels"' in page
    row = page.split("<th>&ge; 0.9</th>")[1].split("</tr>")[0]
    assert "<td>3</td>" in row and "67 %" in row and "(too few to use)" in row and "<td>1</td>" in row
    assert "no decision</span>" in row  # 0.9-0.95 alone: the decisions are all above 0.95
    top = page.split("<th>&ge; 0.95</th>")[1].split("</tr>")[0]
    assert "67 % of 3" in top
    assert Image.objects.filter(dataset=ds, label=2).count() == 2  # the page changed nothing


def test_leaks_show_on_the_dataset_page_and_in_the_run_comparison(as_reviewer):
    from curation.classifier.selection import select_training_data
    from curation.models import DuplicateMember
    from tests.factories import RunFactory

    ds = DatasetFactory(name="leaky")
    source = ImageFactory(dataset=ds)
    copies = [ImageFactory(dataset=ds, split="test") for _ in range(2)]
    for image in (source, *copies):
        DuplicateMember.objects.create(dataset=ds, image=image, group=source.pk, distance=1, linked_by="test")
    page = _page(as_reviewer, "leaky")
    assert 'id="leaks"' in page and "2 test images have a copy in train or val" in page

    today = select_training_data(dataset=ds).test_split_hash()
    earlier = RunFactory(dataset=ds, test_split_hash="0" * 64, test_metrics={"accuracy": 0.5, "macro_f1": 0.5})
    current = RunFactory(dataset=ds, test_split_hash=today, test_metrics={"accuracy": 0.6, "macro_f1": 0.6})
    compare = as_reviewer.get(f"/runs/compare/?ids={earlier.pk},{current.pk}").content.decode()
    assert 'id="leak-warning"' in compare and "2 test images" in compare
    assert compare.count("scored on an earlier test split") == 1
