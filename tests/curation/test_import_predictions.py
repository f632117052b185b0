"""Issue #36 item 1: a user's own model's predictions (and embeddings) imported from a file become a model of the
dataset that the queue can be fed by. A bad file is refused whole, naming its first bad row, with nothing stored."""
import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import Dataset, Image, Job, Run
from curation.selectors import dataset_queue_run
from tests.curation.conftest import EMOTIONS
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.usefixtures("inline_jobs")

AFFECTNET_HEADER = "path,p0,p1,p2,p3,p4,p5,p6,p7"


@pytest.fixture
def faces(db):
    """Dataset "faces": 12 train images a0..a11 (labels cycling through the classes), 2 val, 2 test."""
    ds = DatasetFactory(name="faces")
    for i in range(12):
        ImageFactory(dataset=ds, path=f"a{i}.png", label=i % 8, original_label=i % 8)
    for i in range(2):
        ImageFactory(dataset=ds, path=f"v{i}.png", split=Image.Split.VAL)
        ImageFactory(dataset=ds, path=f"t{i}.png", split=Image.Split.TEST, label=i, original_label=i)
    return ds


def _probs(n, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((n, 8)) + 0.01
    return p / p.sum(1, keepdims=True)


def _csv(tmp_path, rows, header=AFFECTNET_HEADER, name="preds.csv"):
    path = tmp_path / name
    lines = [header] + [",".join([p, *(repr(float(v)) if not isinstance(v, str) else v for v in values)])
                        for p, values in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _all_paths():
    return [f"a{i}.png" for i in range(12)] + ["v0.png", "v1.png", "t0.png", "t1.png"]


def _import(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_predictions", str(path), "--dataset", "faces", *args, "--inline", stdout=out, stderr=err)
    return out.getvalue()


def _nothing_stored(settings):
    assert not Run.objects.exists()
    assert Dataset.objects.get(name="faces").queue_run is None
    runs = Path(settings.MEDIA_ROOT) / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


@pytest.mark.django_db
def test_probabilities_named_in_any_order_become_a_model_that_can_feed_the_queue(faces, tmp_path, settings):
    probs = _probs(16)
    order = [3, 0, 7, 1, 5, 2, 6, 4]  # columns named by class (other spellings too), in a shuffled order
    spell = {"happy": "happiness", "anger": "angry"}
    header = "path," + ",".join(spell.get(EMOTIONS[c], EMOTIONS[c]) for c in order)
    path = _csv(tmp_path, [(p, row[order]) for p, row in zip(_all_paths(), probs)], header=header)
    out = _import(path, "--out-of-sample", "--feed-queue")
    run = Run.objects.get()
    assert run.source == Run.Source.IMPORTED and run.status == Run.Status.SUCCEEDED
    assert run.config["out_of_sample"] is True and run.config["columns"] == "named"
    assert dataset_queue_run(dataset_id=faces.pk) == run
    with np.load(Path(settings.MEDIA_ROOT) / run.oof_file) as oof:
        ids, stored = oof["ids"], oof["probs"]
    by_path = dict(Image.objects.filter(dataset=faces).values_list("id", "path"))
    assert [by_path[i] for i in ids.tolist()] == [f"a{i}.png" for i in range(12)]  # the train split only
    np.testing.assert_allclose(stored, probs[:12], atol=1e-6)  # each class in its own column again
    assert run.selection == {"train": 12, "val": 2, "test": 2, "train_in_dataset": 12}
    assert run.test_metrics["support"][:2] == [1, 1]  # the test images' rows score it on the test split
    assert "softmaxed" not in out and "declared out-of-sample" in out


@pytest.mark.django_db
def test_logits_are_softmaxed_and_the_command_says_so(faces, tmp_path, settings):
    logits = np.random.default_rng(1).normal(0, 3, (12, 8))
    path = _csv(tmp_path, zip(_all_paths()[:12], logits))
    out = _import(path, "--in-sample")
    run = Run.objects.get()
    assert "logits" in out and "softmaxed" in out and run.config["softmaxed"] is True
    assert "in-sample" in out and "optimistic" in out  # the warning about in-sample predictions
    with np.load(Path(settings.MEDIA_ROOT) / run.oof_file) as oof:
        expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        np.testing.assert_allclose(oof["probs"], expected, atol=1e-6)
    assert dataset_queue_run(dataset_id=faces.pk) is None  # not picked: the queue stays with the product's runs


def _embedding_cases(tmp_path):
    good = np.random.default_rng(2).normal(size=(12, 4))
    nan = good.copy()
    nan[5, 2] = np.nan
    np.save(tmp_path / "short.npy", good[:11])
    np.save(tmp_path / "nan.npy", nan)
    return {"short.npy": "11 rows; the predictions have 12", "nan.npy": "row 6 (path 'a5.png'): the embedding holds NaN"}


REFUSALS = [
    # (what is wrong, rows as (path, values) with a twist, the message's key words)
    ("unknown path", {3: ("b3.png", None)}, "row 4 (path 'b3.png'): no image of the dataset has this path"),
    ("same path twice", {5: ("a1.png", None)}, "row 6 (path 'a1.png'): the same path is already row 2"),
    ("NaN", {7: (None, {2: "nan"})}, "row 8 (path 'a7.png'): p2 is 'nan'"),
    ("infinity", {8: (None, {0: "inf"})}, "row 9 (path 'a8.png'): p0 is 'inf'"),
    ("not a number", {2: (None, {1: "0.1x"})}, "row 3 (path 'a2.png'): p1 is '0.1x', not a number"),
    ("a row summing to 0.9", {9: (None, "scale")}, "row 10 (path 'a9.png'): the probabilities sum to 0.9000"),
    ("a missing field", {4: (None, "short")}, "row 5: 8 fields, the header has 9"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("what, twist, says", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_bad_row_refuses_the_whole_file_naming_it_and_stores_nothing(faces, tmp_path, settings, what, twist, says):
    rows = []
    for n, (p, values) in enumerate(zip(_all_paths()[:12], _probs(12))):
        values = [repr(float(v)) for v in values]
        new_path, change = twist.get(n, (None, None))
        if change == "scale":
            values = [repr(float(v) * 0.9) for v in map(float, values)]
        elif change == "short":
            values = values[:-1]
        elif change:
            for k, v in change.items():
                values[k] = v
        rows.append((new_path or p, values))
    path = _csv(tmp_path, rows)
    with pytest.raises(CommandError) as refused:
        _import(path, "--out-of-sample", "--feed-queue")
    assert says in str(refused.value)
    _nothing_stored(settings)
    assert Job.objects.get().status == Job.Status.FAILED


@pytest.mark.django_db
@pytest.mark.parametrize("header, says", [
    ("path,neutral,happy,sad,surprise,fear,disgust,anger", "expected `path` and 8 class columns, found 7"),
    ("path,neutral,happy,sad,surprise,fear,disgust,anger,p7", "not a class: ['p7']"),
    ("path,neutral,happy,sad,surprise,fear,disgust,anger,angry", "named twice: ['anger']"),
    ("file,p0,p1,p2,p3,p4,p5,p6,p7", "needs exactly one `path` column"),
])
def test_a_header_that_cannot_be_read_is_refused(faces, tmp_path, settings, header, says):
    width = len(header.split(",")) - 1
    path = _csv(tmp_path, [(p, [repr(1 / width)] * width) for p in _all_paths()[:12]], header=header)
    with pytest.raises(CommandError, match=".*") as refused:
        _import(path, "--out-of-sample")
    assert says in str(refused.value)
    _nothing_stored(settings)


@pytest.mark.django_db
def test_bad_embeddings_refuse_the_predictions_too(faces, tmp_path, settings):
    path = _csv(tmp_path, zip(_all_paths()[:12], _probs(12)))
    for name, says in _embedding_cases(tmp_path).items():
        with pytest.raises(CommandError) as refused:
            _import(path, "--out-of-sample", "--embeddings", str(tmp_path / name))
        assert says in str(refused.value)
        _nothing_stored(settings)


@pytest.mark.django_db
def test_predictions_without_a_train_image_are_refused(faces, tmp_path, settings):
    path = _csv(tmp_path, [(p, _probs(1)[0]) for p in ("v0.png", "t0.png")])
    with pytest.raises(CommandError, match="none of the 2 rows is a train-split image"):
        _import(path, "--out-of-sample")
    _nothing_stored(settings)


@pytest.mark.django_db
def test_the_user_must_say_whether_the_predictions_are_out_of_sample(faces, tmp_path):
    path = _csv(tmp_path, zip(_all_paths()[:12], _probs(12)))
    with pytest.raises(CommandError, match="one of the arguments --out-of-sample --in-sample is required"):
        _import(path)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_parquet_predictions_and_embeddings_keyed_by_path(faces, tmp_path, settings):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    paths, probs = _all_paths()[:12], _probs(12)
    table = {"path": paths, **{EMOTIONS[c]: probs[:, c].tolist() for c in range(8)}}
    pq.write_table(pa.table(table), tmp_path / "preds.parquet")
    embeddings = np.random.default_rng(3).normal(size=(12, 5))
    back = list(range(11, -1, -1))  # keyed by path: any row order
    pq.write_table(pa.table({"path": [paths[i] for i in back], "embedding": [embeddings[i].tolist() for i in back]}),
                   tmp_path / "emb.parquet")
    _import(tmp_path / "preds.parquet", "--out-of-sample", "--embeddings", str(tmp_path / "emb.parquet"))
    run = Run.objects.get()
    stored = np.load((Path(settings.MEDIA_ROOT) / run.oof_file).with_name("oof_features.npy"))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    np.testing.assert_allclose(stored.astype(np.float32), unit, atol=2e-3)  # row i: path a{i}, as oof.npz


@pytest.mark.django_db
def test_the_dataset_page_imports_predictions_warns_about_in_sample_ones_and_picks_the_queue_model(
        faces, tmp_path, as_curator, settings):
    page = as_curator.get(f"/datasets/{faces.name}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Import your own model&#x27;s predictions" in html or "Import your own model's predictions" in html
    assert "make label-issue scores optimistic" in html  # said beside the out-of-sample question
    path = _csv(tmp_path, zip(_all_paths()[:12], _probs(12)))
    posted = as_curator.post("/jobs/start/predictions/", {
        "predictions-dataset": faces.name, "predictions-path": str(path), "predictions-sample": "in",
        "predictions-feed_queue": "on"})
    assert posted.status_code == 302
    job = Job.objects.get(kind="import_predictions")
    assert job.params["out_of_sample"] is False and job.params["feed_queue"] is True
    from curation.jobs.runner import job_run

    job_run(job_id=job.pk)
    run = Run.objects.get()
    html = as_curator.get(f"/datasets/{faces.name}/").content.decode()
    assert f"Imported model {run.pk}: preds.csv" in html and 'id="in-sample-warning"' in html
    # Back to the product's runs, then to the imported model again, by the page's form.
    assert as_curator.post(f"/datasets/{faces.name}/queue-model/", {"queue_run": ""}).status_code == 302
    assert Dataset.objects.get(pk=faces.pk).queue_run is None
    html = as_curator.get(f"/datasets/{faces.name}/").content.decode()
    assert 'id="in-sample-warning"' not in html and "No model yet" in html
    assert as_curator.post(f"/datasets/{faces.name}/queue-model/", {"queue_run": str(run.pk)}).status_code == 302
    assert dataset_queue_run(dataset_id=faces.pk) == run
    assert as_curator.get(f"/datasets/{faces.name}/runs/").status_code == 200  # an imported run among the runs


@pytest.mark.django_db
def test_the_form_refuses_without_saying_in_or_out_of_sample(faces, tmp_path, as_curator):
    path = _csv(tmp_path, zip(_all_paths()[:12], _probs(12)))
    posted = as_curator.post("/jobs/start/predictions/", {
        "predictions-dataset": faces.name, "predictions-path": str(path), "predictions-sample": ""})
    assert posted.status_code == 400 and not Job.objects.exists()


@pytest.mark.django_db
def test_the_jobs_api_takes_an_import_predictions_job(faces, tmp_path, curator_api):
    path = _csv(tmp_path, zip(_all_paths()[:12], _probs(12)))
    params = {"dataset": faces.name, "path": str(path), "out_of_sample": True}
    created = curator_api.post("/api/jobs/", {"kind": "import_predictions", "params": params}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["params"]["out_of_sample"] is True
    refused = curator_api.post("/api/jobs/", {"kind": "import_predictions", "params": {
        "dataset": faces.name, "path": str(path)}}, format="json")
    assert refused.status_code == 400 and "out-of-sample" in refused.content.decode()
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_only_an_imported_model_of_the_dataset_can_be_picked(faces, tmp_path):
    from tests.factories import RunFactory

    product = RunFactory(dataset=faces, status=Run.Status.SUCCEEDED, oof_file="runs/x/oof.npz")
    for value, says in ((product.pk, "is a product run"), (999999, "is not a run of this dataset"),
                        ("abc", "not 'abc'")):
        with pytest.raises(CommandError, match=says):
            call_command("review_settings", faces.name, "--queue-model", str(value), stdout=io.StringIO())
    assert Dataset.objects.get(pk=faces.pk).queue_run is None


def _signals(dataset):
    rows = Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN).order_by("id").values_list(
        "label_quality", "classifier_flagged", "classifier_suggested_label", "suspicion", "datalab_label_quality",
        "datalab_outlier_score")
    return np.array([[np.nan if v is None else float(v) for v in row] for row in rows])


@pytest.mark.django_db
@pytest.mark.usefixtures("one_torch_thread")
def test_a_product_run_exported_to_a_file_and_imported_scores_the_queue_as_the_run_did(tmp_path, settings):
    """The imported model goes through the same scoring path as a product run: a run's out-of-fold probabilities
    and embeddings, written out as a user's files and imported, give every image the same signals."""
    from tests.curation.conftest import square_dataset

    (tmp_path / "sq").mkdir()
    name = square_dataset(tmp_path / "sq", n=240, name="sq")
    call_command("train_classifier", "--dataset", name, "--arch", "small_cnn", "--epochs", "2", "--batch-size", "32",
                 "--folds", "2", "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    run = Run.objects.get()
    call_command("score_ambiguity", "--dataset", name, "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    dataset = Dataset.objects.get(name=name)
    by_product = _signals(dataset)
    assert np.isfinite(by_product[:, 4]).all()  # Datalab scored every train image from the run's embeddings

    media = Path(settings.MEDIA_ROOT)
    with np.load(media / run.oof_file) as oof:
        ids, probs = oof["ids"], oof["probs"]
    paths = dict(Image.objects.filter(id__in=ids.tolist()).values_list("id", "path"))
    _csv(tmp_path, [(paths[i], row) for i, row in zip(ids.tolist(), probs)], header="path," + ",".join(EMOTIONS),
         name="exported.csv")
    np.save(tmp_path / "exported.npy", np.load((media / run.oof_file).with_name("oof_features.npy")))
    call_command("import_predictions", str(tmp_path / "exported.csv"), "--dataset", name, "--embeddings",
                 str(tmp_path / "exported.npy"), "--out-of-sample", "--feed-queue", "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    imported = Run.objects.get(source=Run.Source.IMPORTED)
    Image.objects.filter(dataset=dataset).update(label_quality=None, suspicion=None, datalab_label_quality=None)
    out = io.StringIO()
    call_command("score_ambiguity", "--dataset", name, "--inline", stdout=out, stderr=io.StringIO())
    assert Job.objects.filter(kind="score_ambiguity").latest("id").result["classifier_run"] == imported.pk
    by_import = _signals(dataset)
    np.testing.assert_allclose(by_import[:, :4], by_product[:, :4], atol=1e-6)  # cleanlab, its flag, the suspicion
    # Datalab's neighbours from the imported embeddings (stored as unit rows in float16): the same up to rounding.
    np.testing.assert_allclose(by_import[:, 4:], by_product[:, 4:], atol=0.02)
