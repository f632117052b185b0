"""Known truth: `register_truth` (checks the file against the dataset, copies it, refuses bad input and keeps what
was registered), the known-truth selector behind the dataset page's panel, its partial template, and the rule that
no signal reads the truth."""
import ast
import csv
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template.loader import render_to_string

from curation.review.services import image_decide
from curation.truth import known_truth, truth_path, truth_read
from tests.factories import DatasetFactory, ImageFactory, UserFactory
from training.labels import CODE

REPO = Path(__file__).resolve().parents[2]
NEUTRAL, HAPPY, SAD, ANGER = CODE["neutral"], CODE["happy"], CODE["sad"], CODE["anger"]


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def write_truth(path, rows, header="path,true_label"):
    path.write_text(header + "\n" + "".join(f"{p},{label}\n" for p, label in rows))
    return path


# Ten images: (path, imported label, true label, suspicion). Wrong imported labels: a, b, c, d, e (five).
IMAGES = [
    ("a.png", HAPPY, SAD, 0.9),
    ("b.png", SAD, NEUTRAL, 0.8),
    ("c.png", ANGER, HAPPY, 0.7),
    ("d.png", NEUTRAL, SAD, 0.6),
    ("e.png", HAPPY, ANGER, None),  # never scored: not in the queue's order
    ("f.png", HAPPY, HAPPY, 0.95),  # the most suspicious image's label is right
    ("g.png", SAD, SAD, 0.5),
    ("h.png", NEUTRAL, NEUTRAL, 0.4),
    ("i.png", ANGER, ANGER, 0.3),
    ("j.png", HAPPY, HAPPY, 0.2),
]
NAMES = {code: name for name, code in CODE.items()}


@pytest.fixture
def dataset(db):
    ds = DatasetFactory(name="faces")
    for path, label, _, suspicion in IMAGES:
        ImageFactory(dataset=ds, path=path, original_label=label, label=label, suspicion=suspicion)
    return ds


@pytest.fixture
def truth_csv(tmp_path):
    return write_truth(tmp_path / "truth.csv", [(p, NAMES[true]) for p, _, true, _ in IMAGES])


def image(ds, path):
    return ds.images.get(path=path)


def decide(user, ds, path, action, label=None):
    img = image(ds, path)
    image_decide(user=user, image_id=img.pk, action=action, version=img.version, label=label)


# --- the command --------------------------------------------------------------------------------------------------

def test_register_truth_copies_the_file_and_says_how_many_labels_are_wrong(dataset, truth_csv, data_dir, capsys):
    call_command("register_truth", "--dataset", "faces", str(truth_csv))
    out = capsys.readouterr().out
    assert "10 images, 5 imported labels wrong (50.0%)" in out
    assert truth_path(dataset) == data_dir / "truth" / "faces.csv"
    assert truth_read(dataset) == {p: true for p, _, true, _ in IMAGES}


def test_make_synthetic_faces_truth_csv_registers(db, inline_jobs, data_dir, tmp_path, settings):
    """The file the demo registers: make_synthetic_faces' truth.csv (more columns than needed)."""
    from training.synthetic_faces import make_synthetic_faces

    make_synthetic_faces(tmp_path / "faces", n=40, size=32, noise=0.3, seed=1)
    settings.FER_IMPORT_ROOTS = [*settings.FER_IMPORT_ROOTS, tmp_path]
    call_command("import_dataset", str(tmp_path / "faces" / "labels.csv"), "--format", "csv", "--name", "syn",
                 "--inline")
    call_command("register_truth", "--dataset", "syn", str(tmp_path / "faces" / "truth.csv"))
    from curation.models import Dataset

    ds = Dataset.objects.get(name="syn")
    truth = truth_read(ds)
    wrong = sum(truth[p] != label for p, label in ds.images.values_list("path", "original_label"))
    with open(tmp_path / "faces" / "truth.csv", newline="") as fh:
        noisy_rows = sum(row["noisy"] in ("1", "True", "true") for row in csv.DictReader(fh))
    assert len(truth) == 40 and wrong == noisy_rows > 0


@pytest.mark.parametrize("rows, header, message", [
    ([(p, NAMES[t]) for p, _, t, _ in IMAGES] + [("zz.png", "happy")], "path,true_label",
     "1 path(s) of the file are not images of faces (zz.png)"),
    ([(p, NAMES[t]) for p, _, t, _ in IMAGES[:7]], "path,true_label",
     "3 image(s) of faces are not in the file (h.png, i.png, j.png)"),
    ([(p, NAMES[t]) for p, _, t, _ in IMAGES[:3]] + [("x1.png", "sad"), ("x2.png", "sad"), ("x3.png", "sad"),
                                                     ("x4.png", "sad")], "path,true_label",
     "4 path(s) of the file are not images of faces (x1.png, x2.png, x3.png and 1 more)"),
    ([(p, NAMES[t]) for p, _, t, _ in IMAGES], "path,label", "missing true_label"),
    ([("a.png", "sad"), ("a.png", "happy")], "path,true_label", "a.png is listed twice"),
    ([("a.png", "grumpy")], "path,true_label", "line 2: unknown label 'grumpy'"),
    ([("", "sad")], "path,true_label", "line 2: empty path"),
    ([], "path,true_label", "lists no image"),
])
def test_register_truth_refuses_a_file_that_does_not_fit_and_keeps_the_registered_one(
        dataset, truth_csv, data_dir, tmp_path, rows, header, message):
    call_command("register_truth", "--dataset", "faces", str(truth_csv))
    before = truth_path(dataset).read_bytes()
    bad = write_truth(tmp_path / "bad.csv", rows, header=header)
    with pytest.raises(CommandError) as caught:
        call_command("register_truth", "--dataset", "faces", str(bad))
    assert message in str(caught.value)
    assert truth_path(dataset).read_bytes() == before
    assert [p.name for p in truth_path(dataset).parent.iterdir()] == ["faces.csv"]  # no temporary file left


def test_register_truth_names_a_missing_dataset_and_file(dataset, truth_csv, data_dir, tmp_path):
    with pytest.raises(CommandError, match="dataset 'nope' does not exist"):
        call_command("register_truth", "--dataset", "nope", str(truth_csv))
    with pytest.raises(CommandError, match=f"no truth file at {tmp_path / 'missing.csv'}"):
        call_command("register_truth", "--dataset", "faces", str(tmp_path / "missing.csv"))
    not_csv = tmp_path / "faces.bin"
    not_csv.write_bytes(b"path,true_label\n\xff\xfe,\x00\n")
    with pytest.raises(CommandError, match="is not a UTF-8 CSV file"):
        call_command("register_truth", "--dataset", "faces", str(not_csv))
    assert not truth_path(dataset).exists()


def test_register_truth_refuses_a_dataset_without_images(db, data_dir, truth_csv):
    DatasetFactory(name="empty")
    with pytest.raises(CommandError, match="dataset empty has no images yet"):
        call_command("register_truth", "--dataset", "empty", str(truth_csv))


# --- the selector -------------------------------------------------------------------------------------------------

def test_known_truth_is_none_without_a_registered_file(dataset, data_dir):
    assert known_truth(dataset=dataset) is None
    assert render_to_string("curation/pages/_known_truth.html", {"known_truth": None}).strip() == ""


def test_known_truth_counts_the_queue_top_and_the_reviews(dataset, truth_csv, data_dir):
    call_command("register_truth", "--dataset", "faces", str(truth_csv))
    k = known_truth(dataset=dataset, n=4)
    # The scored order: f (right), a, b, c (wrong); e is wrong but unscored.
    assert (k.queue_top, k.queue_scored, k.queue_wrong, k.queue_share) == (4, 9, 3, 0.75)
    assert (k.wrong_total, k.base_rate, k.reviewed, k.fixed, k.mistakes) == (5, 0.5, 0, 0, 0)

    user = UserFactory()
    decide(user, dataset, "a.png", "relabel", SAD)  # fixed: relabelled to the truth
    decide(user, dataset, "b.png", "exclude")  # fixed: excluded
    decide(user, dataset, "c.png", "confirm")  # mistake: a wrong label kept
    decide(user, dataset, "d.png", "relabel", HAPPY)  # mistake: relabelled to another wrong class
    decide(user, dataset, "g.png", "exclude")  # mistake: a right label excluded
    decide(user, dataset, "h.png", "confirm")  # right, nothing to count
    decide(user, dataset, "j.png", "relabel", SAD)  # mistake: a right label made wrong
    k = known_truth(dataset=dataset, n=4)
    assert (k.reviewed, k.fixed, k.fixed_relabelled, k.fixed_excluded) == (7, 2, 1, 1)
    assert (k.mistakes, k.kept_wrong, k.relabelled_wrong, k.excluded_right) == (4, 1, 2, 1)
    assert k.fixed_share == 0.4
    # Decisions do not move the queue figure: it judges the order scoring gave.
    assert (k.queue_wrong, k.queue_share) == (3, 0.75)

    html = render_to_string("curation/pages/_known_truth.html", {"known_truth": k})
    assert 'id="known-truth"' in html
    text = " ".join(html.split())
    assert "Of the review queue's first 4 images, <strong>3</strong> have wrong labels (75.0 %)" in text
    assert "among all images 50.0 % do" in text
    assert "fixed <strong>2</strong> of the 5 wrong labels (40.0 %): 1 relabelled to the true class, 1 excluded" in text
    assert ("Decisions that got it wrong: <strong>4</strong> (1 wrong label confirmed, 2 relabelled to a wrong "
            "class, 1 right label excluded)") in text


def test_known_truth_before_scoring_says_the_queue_has_no_order(dataset, truth_csv, data_dir):
    dataset.images.update(suspicion=None)
    call_command("register_truth", "--dataset", "faces", str(truth_csv))
    k = known_truth(dataset=dataset)
    assert (k.queue_scored, k.queue_wrong, k.queue_share) == (0, 0, None)
    html = " ".join(render_to_string("curation/pages/_known_truth.html", {"known_truth": k}).split())
    assert "has not been scored yet" in html and "first" not in html


def test_known_truth_counts_only_the_first_n_scored(dataset, truth_csv, data_dir):
    call_command("register_truth", "--dataset", "faces", str(truth_csv))
    assert known_truth(dataset=dataset, n=1).queue_wrong == 0  # f, the top, is right
    assert known_truth(dataset=dataset, n=50).queue_wrong == 4  # a, b, c, d of the nine scored
    assert known_truth(dataset=dataset, n=50).queue_share == pytest.approx(4 / 9)


# --- no signal reads the truth ------------------------------------------------------------------------------------

# The modules that may import curation.truth: the ones that show it (commands, pages) and the demo. Anything that
# scores, orders the queue, suggests a label or trains must not: the panel would stop being an honest measurement.
# curation.apps only connects the panel's label-change receiver (truth_on_label_changed), which counts for the panel.
MAY_READ_TRUTH = ("curation.truth", "curation.management", "curation.web", "curation.views", "curation.templatetags",
                  "fer_site.urls", "curation.apps")


def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def truth_readers():
    readers = []
    for package in ("training", "gan", "curation", "fer_site", "benchmarks"):
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            if any(name == "curation.truth" or name.startswith("curation.truth.") for name in _imports(path)):
                readers.append(module)
    return readers


def test_no_scoring_training_or_queue_module_imports_the_truth():
    readers = truth_readers()
    assert "curation.management.commands.register_truth" in readers  # the scan finds importers
    assert [m for m in readers if not any(m == p or m.startswith(p + ".") for p in MAY_READ_TRUTH)] == []
