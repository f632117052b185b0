"""Issue #18 items 1-2: out-of-fold embeddings stored with every run that has fold models, and cleanlab Datalab's
signals from them (label issues from neighbours, outliers, near-duplicate sets) on the images, in the queue, the
API, the export and the review card with each image's nearest neighbours."""
import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.classifier.features import (
    OOF_FEATURES_FILE,
    nearest_neighbours,
    oof_features_path,
)
from curation.models import Image, Job, Run
from curation.services import image_label_change
from tests.curation.conftest import EMOTIONS, square_dataset
from tests.factories import DatasetFactory, ImageFactory, RunFactory, UserFactory
from tests.images import squares
from training.engine import last_linear, predict_proba_and_features
from training.models import build_model

TINY = ["--arch", "small_cnn", "--epochs", "2", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("inline_jobs", "one_torch_thread")


@pytest.mark.parametrize("arch", ["small_cnn", "seed_cnn", "resnet18"])
def test_the_embedding_is_what_the_last_linear_layer_reads(arch):
    torch.manual_seed(0)
    size = 64 if arch == "seed_cnn" else 32  # seed_cnn's valid convolutions need 64 px
    model = build_model(arch, 8, size)
    x = torch.randint(0, 256, (10, 3, size, size), dtype=torch.uint8)
    probs, features = predict_proba_and_features(model, x, batch_size=4, device="cpu", amp=False,
                                                 channels_last=False)
    head = last_linear(model)
    assert features.shape == (10, head.in_features) and probs.shape == (10, 8)
    logits = head(torch.from_numpy(features)).detach()
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), probs, atol=1e-5)


def _run_with_folds(tmp_path, name="sq", n=240):
    square_dataset(tmp_path, n=n, name=name)
    call_command("train_classifier", "--dataset", name, *TINY, "--folds", "2", "--inline", stdout=io.StringIO(),
                 stderr=io.StringIO())
    return Run.objects.get(dataset__name=name)


@pytest.mark.django_db
def test_every_train_image_gets_its_embedding_from_the_fold_model_that_did_not_see_it(tmp_path, settings):
    run = _run_with_folds(tmp_path)
    media = Path(settings.MEDIA_ROOT)
    oof = np.load(media / run.oof_file)
    path = oof_features_path(run)
    assert path == (media / run.oof_file).with_name(OOF_FEATURES_FILE)
    features = np.load(path, mmap_mode="r")
    train_ids = set(Image.objects.filter(dataset=run.dataset, split="train").values_list("id", flat=True))
    assert set(oof["ids"].tolist()) == train_ids
    assert features.dtype == np.float16 and features.shape == (len(oof["ids"]), 256)
    assert np.isfinite(features).all() and np.abs(features).sum(1).min() > 0
    heads, held = [], []
    for k in range(run.folds):
        with np.load(path.with_name(f"oof_fold{k}.npz")) as part:
            heads.append((part["head_weight"], part["head_bias"]))
            held.append(part["index"])
    # oof.npz's rows are the train images in snapshot order; a fold file's index counts in that order too.
    assert sorted(np.concatenate(held).tolist()) == list(range(len(oof["ids"])))

    def centred(logits):  # class scores up to the per-row constant softmax ignores
        return logits - logits.mean(1, keepdims=True)

    def gap(head, rows):
        """How far the class scores `head` gives the stored embeddings are from those of the stored probabilities."""
        logits = np.asarray(features[rows], np.float32) @ head[0].T + head[1]
        return np.abs(centred(logits) - centred(np.log(oof["probs"][rows]))).max()

    for k, rows in enumerate(held):
        # The stored embedding is the one the fold model's class scores came from: its head maps it to the image's
        # out-of-fold probabilities (float16 rounding apart); the other fold's head does not.
        own, other = gap(heads[k], rows), gap(heads[1 - k], rows)
        assert own < 0.01 and other > 10 * own, (k, own, other)


@pytest.mark.django_db
def test_nearest_neighbours_come_from_the_memory_mapped_embeddings(tmp_path):
    run = _run_with_folds(tmp_path)
    oof = np.load(Path(oof_features_path(run)).with_name("oof.npz"))
    features = np.load(oof_features_path(run)).astype(np.float32)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    image_id = int(oof["ids"][7])
    expected = np.argsort(1 - unit @ unit[7], kind="stable")
    expected = [int(oof["ids"][r]) for r in expected if r != 7][:5]
    found = nearest_neighbours(run, image_id, k=5)
    assert [i for i, _ in found] == expected
    assert [d for _, d in found] == sorted(d for _, d in found)
    assert nearest_neighbours(run, 10 ** 9) == []


def _dataset_with_near_copies(root, n=240, name="dl", copies=6):
    """square_dataset's images and manifest, plus its first `copies` train images again with faint noise
    (copyK.png): near-duplicates the embeddings must place next to their originals. Returns (name, [(original's
    path, copy's path)])."""
    from PIL import Image as PILImage

    x, y = squares(n)
    lines = ["path,label,split"]
    for i in range(n):
        PILImage.fromarray(x[i]).save(root / f"{i:04d}.png")
        split = "train" if i < 0.7 * n else "val" if i < 0.85 * n else "test"
        lines.append(f"{i:04d}.png,{EMOTIONS[y[i]]},{split}")
    rng = np.random.default_rng(1)
    for k in range(copies):
        noise = rng.integers(-2, 3, x[k].shape)
        PILImage.fromarray(np.clip(x[k].astype(int) + noise, 0, 255).astype(np.uint8)).save(root / f"copy{k}.png")
        lines.append(f"copy{k}.png,{EMOTIONS[y[k]]},train")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    call_command("import_dataset", str(root / "labels.csv"), "--format", "csv", "--name", name, "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    return name, [(f"{k:04d}.png", f"copy{k}.png") for k in range(copies)]


@pytest.fixture
def datalab_scored(tmp_path, db):
    name, pairs = _dataset_with_near_copies(tmp_path)
    call_command("train_classifier", "--dataset", name, *TINY, "--folds", "2", "--inline", stdout=io.StringIO(),
                 stderr=io.StringIO())
    call_command("score_ambiguity", "--dataset", name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    return name, pairs


def test_datalab_signals_land_on_every_train_image_as_datalab_computes_them(datalab_scored):
    from cleanlab import Datalab

    name, pairs = datalab_scored
    run = Run.objects.get(dataset__name=name)
    oof = np.load(Path(oof_features_path(run)).with_name("oof.npz"))
    features = np.load(oof_features_path(run)).astype(np.float32)
    images = {i.id: i for i in Image.objects.filter(dataset__name=name, split="train")}
    ids = oof["ids"].tolist()
    assert set(ids) == set(images)
    lab = Datalab(data={"label": np.array([images[i].label for i in ids])}, label_name="label", verbosity=0)
    lab.find_issues(features=features, issue_types={"label": {"k": 10}, "outlier": {"k": 10},
                                                    "near_duplicate": {"k": 10}})
    found = lab.get_issues()
    sets = lab.get_issues("near_duplicate")["near_duplicate_sets"]
    for r, image_id in enumerate(ids):
        img = images[image_id]
        assert img.datalab_label_quality == pytest.approx(found["label_score"].iat[r], abs=1e-6)
        assert img.datalab_label_issue == bool(found["is_label_issue"].iat[r])
        assert img.datalab_outlier_score == pytest.approx(found["outlier_score"].iat[r], abs=1e-6)
        assert img.datalab_outlier == bool(found["is_outlier_issue"].iat[r])
        assert img.datalab_near_duplicate_score == pytest.approx(found["near_duplicate_score"].iat[r], abs=1e-6)
        assert img.datalab_near_duplicates == sorted(ids[j] for j in sets.iat[r])
    # A near copy and its original embedded by the same fold model are each in the other's near-duplicate set.
    fold_of = {}
    for k in range(run.folds):
        with np.load(oof_features_path(run).with_name(f"oof_fold{k}.npz")) as part:
            fold_of.update({ids[r]: k for r in part["index"]})
    by_path = {i.path: i for i in images.values()}
    same_fold = [(by_path[o], by_path[c]) for o, c in pairs if fold_of[by_path[o].id] == fold_of[by_path[c].id]]
    assert same_fold  # with these seeds, three of the six pairs
    for a, b in same_fold:
        assert a.datalab_near_duplicates == [b.id] and b.datalab_near_duplicates == [a.id]
        assert a.datalab_near_duplicate_score < 0.1
    # A reviewer's wrong relabel is judged by the neighbours at the next scoring: they carry the old label.
    target = by_path["0010.png"]
    assert not target.datalab_label_issue
    image_label_change(image_id=target.id, action="relabel", label=(target.label + 4) % 8,
                       expected_version=target.version, user=UserFactory())
    call_command("score_ambiguity", "--dataset", name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    target.refresh_from_db()
    assert target.datalab_label_issue and target.datalab_label_quality < 0.2
    # Fusion takes the neighbours' label score only by its rule: once reviews exist, it is a candidate measured on
    # them against the labels the reviewer saw, and the choice is never worse than it. Here it orders every review
    # but the wrong relabel above, whose imported label it judges as right as the confirmed ones' (AUROC 0.975).
    ranked = list(Image.objects.filter(dataset__name=name, split="train").order_by("datalab_label_quality", "id"))
    Image.objects.filter(pk__in=[i.pk for i in ranked[:20]]).update(status=Image.Status.RELABELLED)
    Image.objects.filter(pk__in=[i.pk for i in ranked[-30:]]).update(status=Image.Status.CONFIRMED)
    call_command("score_ambiguity", "--dataset", name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    report = Job.objects.filter(kind="score_ambiguity").order_by("-id").first().result["fusion"]
    assert report["auroc"]["datalab"] > 0.95 and report["used"] in ("datalab", "logistic")
    # Val and test images are not scored.
    assert not Image.objects.filter(dataset__name=name).exclude(split="train").filter(
        datalab_label_quality__isnull=False).exists()


# Queue, API, export and card, on images whose Datalab fields are set directly and an embeddings file written
# as the classifier job writes it.

def _datalab_dataset(n=6):
    ds = DatasetFactory(name="dlq")
    images = [ImageFactory(dataset=ds, path=f"f/{k}.png", label=k % 2 + 1, original_label=k % 2 + 1,
                           suspicion=0.5 - k / 100) for k in range(n)]
    marks = {0: {"datalab_label_issue": True}, 1: {"datalab_outlier": True},
             2: {"datalab_near_duplicates": [images[3].pk]}, 3: {"datalab_near_duplicates": [images[2].pk]}}
    for k, img in enumerate(images):
        Image.objects.filter(pk=img.pk).update(
            datalab_label_quality=0.1 * k, datalab_outlier_score=0.9 - 0.1 * k, datalab_near_duplicate_score=0.5,
            **marks.get(k, {}))
    return ds, [Image.objects.get(pk=i.pk) for i in images]


@pytest.mark.django_db
def test_each_datalab_signal_is_a_queue_filter_in_the_page_and_the_api(client, user, reviewer_api):
    from curation.review.forms import ReviewFilterForm

    ds, images = _datalab_dataset()
    expected = {"datalab_label": [images[0].pk], "datalab_outlier": [images[1].pk],
                "datalab_duplicate": [images[2].pk, images[3].pk]}
    for signal, pks in expected.items():
        form = ReviewFilterForm({"dataset": ds.name, "signal": signal})
        assert form.is_valid(), form.errors
        listed = reviewer_api.get("/api/images/", {"dataset": ds.name, "signal": signal}).json()["results"]
        assert sorted(row["id"] for row in listed) == pks, signal
    client.force_login(user)
    page = client.get(reverse("review"), {"dataset": ds.name, "signal": "datalab_outlier"}).content.decode()
    assert f'alt="image {images[1].pk}"' in page
    assert 'value="datalab_duplicate"' in page  # offered in the filter's choices


@pytest.mark.django_db
def test_the_api_and_the_export_carry_the_datalab_fields_after_the_contract_columns(reviewer_api):
    from curation.export import CONTRACT_COLUMNS

    ds, images = _datalab_dataset()
    detail = reviewer_api.get(f"/api/images/{images[2].pk}/").json()
    assert (detail["datalab_label_quality"], detail["datalab_label_issue"], detail["datalab_outlier_score"],
            detail["datalab_outlier"], detail["datalab_near_duplicate_score"], detail["datalab_near_duplicates"]) == (
        pytest.approx(0.2), False, pytest.approx(0.7), False, 0.5, [images[3].pk])
    response = reviewer_api.get(f"/api/datasets/{ds.name}/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert rows[0] == [*CONTRACT_COLUMNS, "datalab_label_quality", "datalab_label_issue", "datalab_outlier_score",
                       "datalab_outlier", "datalab_near_duplicate_score", "datalab_near_duplicate_ids",
                       "duplicate_group"]
    by_path = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    row = by_path["f/2.png"]
    assert (float(row["datalab_label_quality"]), row["datalab_label_issue"], row["datalab_outlier"],
            row["datalab_near_duplicate_ids"]) == (pytest.approx(0.2), "0", "0", str(images[3].pk))
    assert (by_path["f/0.png"]["datalab_label_issue"], by_path["f/1.png"]["datalab_outlier"]) == ("1", "1")
    Image.objects.filter(pk=images[4].pk).update(datalab_label_quality=None, datalab_outlier_score=None,
                                                 datalab_near_duplicate_score=None)
    response = reviewer_api.get(f"/api/datasets/{ds.name}/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    unscored = next(row for row in rows if row[0] == "f/4.png")
    assert unscored[len(CONTRACT_COLUMNS):] == [""] * 7


def _embedded_run(ds, media, images, features):
    """A finished run of `ds` whose oof.npz and oof_features.npy hold `images` in this order."""
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, folds=2)
    folder = media / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    np.savez(folder / "oof.npz", ids=np.array([i.pk for i in images], dtype=np.int64),
             labels=np.array([i.label for i in images]), probs=np.full((len(images), 8), 1 / 8, dtype=np.float32))
    np.save(folder / OOF_FEATURES_FILE, np.asarray(features, dtype=np.float16))
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")
    return Run.objects.get(pk=run.pk)


@pytest.mark.django_db
def test_the_card_shows_the_nearest_neighbours_with_their_labels_and_links_in_constant_queries(
        client, user, _media_root):
    counts = []
    for n in (8, 80):
        ds = DatasetFactory(name=f"nb{n}")
        top = ImageFactory(dataset=ds, label=1, original_label=1, suspicion=0.99)
        others = [ImageFactory(dataset=ds, label=k % 3, original_label=k % 3, suspicion=0.1) for k in range(n)]
        # On a circle: other k sits at angle k degrees, the top image at 0.5, so its nearest are 0, 1, 2, ...
        angles = np.radians([0.5] + list(range(n)))
        run = _embedded_run(ds, _media_root, [top, *others], np.column_stack([np.cos(angles), np.sin(angles)]))
        Image.objects.filter(pk=others[2].pk).update(label=7)  # a reviewer's relabel since: shown as it is now
        client.force_login(user)
        with CaptureQueriesContext(connection) as ctx:
            card = client.get(reverse("review"), {"dataset": ds.name}).content.decode()
        counts.append(len(ctx.captured_queries))
        section = card[card.index('<section class="neighbours"'):]
        section = section[:section.index("</section>")]
        links = re.findall(r'<a class="neighbour" href="([^"]+)" data-image-id="(\d+)".*?'
                           r'<span class="neighbour-label">([^<]+)</span>', section, re.DOTALL)
        expected = [others[k] for k in (0, 1, 2, 3, 4)]
        assert [int(pk) for _, pk, _ in links] == [i.pk for i in expected]
        assert [href for href, _, _ in links] == [f"/media/{i.file}" for i in expected]
        assert [label for _, _, label in links] == ["neutral", "happy", "contempt", "neutral", "happy"]
        assert [i for i, _ in nearest_neighbours(run, top.pk)] == [i.pk for i in expected]
    assert counts[0] == counts[1]
