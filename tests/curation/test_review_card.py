"""The review card's details (transformations, classifier probabilities, history) and the queue's filters: signal,
suspicion range, status any, and a run's confusion-matrix cell (run + label + predicted on the test split)."""
import numpy as np
import pytest
from django.urls import reverse

from curation.classifier.predictions import run_predictions_path
from curation.models import Image, Run
from curation.review.services import image_claim_next, image_decide
from curation.selectors import images_list
from tests.factories import (
    DatasetFactory,
    GanModelFactory,
    GeneratedImageFactory,
    ImageFactory,
    RunFactory,
    TransformScoreFactory,
)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ds(db):
    return DatasetFactory(name="card")


def _card_image_id(response):
    html = response.content.decode()
    marker = 'data-image-id="'
    return int(html.split(marker, 1)[1].split('"', 1)[0]) if marker in html else None


def _text(response):
    return " ".join(response.content.decode().split())


def _run_with_files(ds, media, *, oof=None, test=None):
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, arch="small_cnn")
    folder = media / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    if oof is not None:
        ids, probs = oof
        np.savez(folder / "oof.npz", ids=np.array(ids), labels=np.zeros(len(ids), int), probs=np.array(probs))
        Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")
    if test is not None:
        ids, labels, probs = test
        np.savez(run_predictions_path(run), ids=np.array(ids, dtype=np.int64), labels=np.array(labels),
                 probs=np.array(probs, dtype=np.float32))
    return Run.objects.get(pk=run.pk)


def test_the_card_shows_transformations_generated_images_probabilities_and_history(client, user, ds, _media_root):
    image = ImageFactory(dataset=ds, label=1, original_label=1, suspicion=0.9)
    other = ImageFactory(dataset=ds, label=1, original_label=1, suspicion=0.1)
    gan = GanModelFactory(dataset=ds, source_label=1, target_label=2)
    gan2 = GanModelFactory(dataset=ds, source_label=6, target_label=1)
    TransformScoreFactory(image=image, gan=gan, direction="AB", target_label=2, epoch=8, ssim=0.931, z=2.5)
    TransformScoreFactory(image=image, gan=gan2, direction="BA", target_label=6, epoch=8, ssim=0.61, z=-0.4)
    GeneratedImageFactory(gan=gan, source_image=image, target_label=2, file="gans/1/gen/x.png",
                          content_hash="h")
    probs = [[0.05, 0.2, 0.6, 0.05, 0.02, 0.03, 0.03, 0.02], [0.1, 0.7, 0.1, 0.02, 0.02, 0.02, 0.02, 0.02]]
    _run_with_files(ds, _media_root, oof=([other.pk, image.pk], probs[::-1]))
    image_decide(user=user, image_id=other.pk, action="confirm", version=1)
    client.force_login(user)
    response = client.get(reverse("review"), {"dataset": "card"})
    text = _text(response)
    assert _card_image_id(response) == image.pk
    assert "CycleGAN #" in text and "G_A happy→sad (epoch 8)" in text and "0.931" in text and "2.50" in text
    assert 'src="/media/gans/1/gen/x.png"' in text
    assert "G_B happy→anger" in text and "not generated" in text
    assert text.index("G_A happy→sad") < text.index("G_B happy→anger")  # highest z first
    assert "out-of-fold" in text and "sad 0.60" in text and "happy 0.20" in text
    assert text.index("sad 0.60") < text.index("happy 0.20")
    assert "No change yet." in text


def test_the_card_query_count_does_not_grow_with_scores_generators_or_history(
        client, user, ds, django_assert_num_queries):
    counts = []
    for n in (1, 12):
        ds_n = DatasetFactory(name=f"card{n}")
        image = ImageFactory(dataset=ds_n, suspicion=0.9)
        for g in range(n):
            gan = GanModelFactory(dataset=ds_n, source_label=1, target_label=g % 8)
            TransformScoreFactory(image=image, gan=gan, direction="AB", target_label=g % 8, epoch=1,
                                  ssim=0.5, z=0.1 * g)
            GeneratedImageFactory(gan=gan, source_image=image, target_label=g % 8, file=f"g{g}.png",
                                  content_hash=f"{n}-{g}")
        client.force_login(user)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        with CaptureQueriesContext(connection) as ctx:
            client.get(reverse("review"), {"dataset": ds_n.name})
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_test_images_show_the_runs_test_predictions(client, user, ds, _media_root):
    image = ImageFactory(dataset=ds, split="test", suspicion=None)
    _run_with_files(ds, _media_root, test=([image.pk], [1], [[0.1, 0.1, 0.1, 0.5, 0.1, 0.05, 0.03, 0.02]]))
    client.force_login(user)
    text = _text(client.get(reverse("review"), {"dataset": "card"}))
    assert "test predictions" in text and "surprise 0.50" in text


@pytest.mark.parametrize("signal, expected", [("ssim", {"s", "b"}), ("classifier", {"c", "b"}), ("both", {"b"}),
                                              ("either", {"s", "c", "b"}), ("", {"s", "c", "b", "n"})])
def test_the_signal_filter(client, user, ds, signal, expected):
    made = {"s": ImageFactory(dataset=ds, flagged=True, suspicion=0.4),
            "c": ImageFactory(dataset=ds, classifier_flagged=True, suspicion=0.5),
            "b": ImageFactory(dataset=ds, flagged=True, classifier_flagged=True, suspicion=0.6),
            "n": ImageFactory(dataset=ds, suspicion=0.7)}
    names = {image.pk: name for name, image in made.items()}
    seen = set()
    while (image := image_claim_next(user=user, dataset=ds, filters={"signal": signal or None})) is not None:
        seen.add(names[image.pk])
        image_decide(user=user, image_id=image.pk, action="confirm", version=image.version)
    assert seen == expected
    assert {names[i.pk] for i in images_list(dataset="card", signal=signal or None)} == expected  # the API's list
    assert {names[i.pk] for i in images_list(dataset="card", signal=signal or None, status="unreviewed")} == set()


def test_the_suspicion_range_and_a_bad_range(client, user, ds):
    ImageFactory(dataset=ds, suspicion=0.9)
    middle = ImageFactory(dataset=ds, suspicion=0.5)
    ImageFactory(dataset=ds, suspicion=0.1)
    ImageFactory(dataset=ds, suspicion=None)
    client.force_login(user)
    response = client.get(reverse("review"), {"dataset": "card", "min_suspicion": "0.3", "max_suspicion": "0.6"})
    assert _card_image_id(response) == middle.pk
    assert "reviewed 0 / 1 under this filter" in _text(response)
    bad = client.get(reverse("review"), {"dataset": "card", "min_suspicion": "0.6", "max_suspicion": "0.3"})
    assert _card_image_id(bad) is None and "the suspicion range 0.6 to 0.3 is empty" in _text(bad)


def test_status_any_browses_every_status_but_never_your_own_decisions(user, ds):
    from tests.factories import UserFactory
    other = UserFactory(username="other")
    decided = ImageFactory(dataset=ds, suspicion=0.9)
    mine = ImageFactory(dataset=ds, suspicion=0.8)
    fresh = ImageFactory(dataset=ds, suspicion=0.1)
    image_decide(user=other, image_id=decided.pk, action="exclude", version=1)
    image_decide(user=user, image_id=mine.pk, action="exclude", version=1)
    seen = []
    while (image := image_claim_next(user=user, dataset=ds, filters={"status": "any"})) is not None:
        seen.append(image.pk)
        image_decide(user=user, image_id=image.pk, action="confirm", version=image.version)
    assert seen == [decided.pk, fresh.pk]
    assert Image.objects.get(pk=decided.pk).status == "confirmed"


def test_a_runs_confusion_cell_opens_the_queue_on_its_test_images(client, user, ds, _media_root):
    # Test images of the run: true happy predicted sad (a, b), true happy predicted happy (c), true sad -> sad (d).
    a, b, c, d = (ImageFactory(dataset=ds, split="test", label=1, original_label=1, suspicion=s)
                  for s in (0.2, 0.8, 0.9, 0.95))
    Image.objects.filter(pk=d.pk).update(label=2, original_label=2)
    train = ImageFactory(dataset=ds, split="train", label=1, original_label=1, suspicion=1.0)
    onehot = np.eye(8)
    run = _run_with_files(ds, _media_root, test=([a.pk, b.pk, c.pk, d.pk], [1, 1, 1, 2],
                                                  [onehot[2], onehot[2], onehot[1], onehot[2]]))
    client.force_login(user)
    url = f"{reverse('review')}?dataset=card&split=test&label=1&run={run.pk}&predicted=2"
    response = client.get(url)
    text = _text(response)
    assert _card_image_id(response) == b.pk
    assert f"Test images of run {run.pk} labelled happy, predicted sad" in text
    assert "reviewed 0 / 2 under this filter" in text
    decided = client.post(reverse("review_decide"), {"image_id": b.pk, "version": 1, "decision": "relabel:2",
                                                     "dataset": "card", "split": "test", "label": "1",
                                                     "run": run.pk, "predicted": "2"}, **HTMX)
    assert _card_image_id(decided) == a.pk  # the relabelled one left this cell's queue; its label was happy then
    assert "reviewed 1 / 2 under this filter" in _text(decided)
    # The runs page's link (status=any: every status, but never one's own decisions): a, since b is decided by us.
    other = client.get(f"{reverse('review')}?dataset=card&split=test&label=1&run={run.pk}&predicted=2&status=any")
    assert _card_image_id(other) == a.pk and "reviewed 1 / 2 under this filter" in _text(other)
    # Without a dataset the run's is used; the API's image list takes the same filter.
    assert _card_image_id(client.get(f"{reverse('review')}?run={run.pk}&label=1&predicted=2")) == a.pk
    assert train.pk not in [i.pk for i in images_list(dataset="card", run=run, label=1, predicted=2)]
    assert sorted(i.pk for i in images_list(dataset="card", run=run, label=1, predicted=2)) == sorted([a.pk, b.pk])
    wrong = client.get(f"{reverse('review')}?dataset={DatasetFactory(name='else').name}&run={run.pk}")
    assert _card_image_id(wrong) is None and f"run {run.pk} belongs to dataset card, not else" in _text(wrong)
    assert "predicted needs a run" in _text(client.get(f"{reverse('review')}?dataset=card&predicted=2"))
