"""Fixtures and helpers the curation tests share: the reviewer and curator users and their clients (the site's
test client and the API's), the reviewed calibration dataset, and the square-image datasets the training and
scoring tests import through the product."""
import io

import pytest
from rest_framework.test import APIClient

from curation.models import Image
from curation.tokens import issue_token
from tests.factories import CuratorFactory, DatasetFactory, ImageFactory, UserFactory
from tests.images import squares

EMOTIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


# --- users and clients ------------------------------------------------------------------------------------------

@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita")


@pytest.fixture
def curator(db):
    return CuratorFactory(username="carl")


@pytest.fixture
def as_reviewer(client, user):
    """The site's test client, logged in as the plain `user` (a reviewer)."""
    client.force_login(user)
    return client


@pytest.fixture
def as_curator(client, curator):
    """The site's test client, logged in as the curator."""
    client.force_login(curator)
    return client


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def reviewer_api(reviewer):
    """A reviewer's client, authenticated by token as a script would be."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(reviewer)[1]}")
    return client


@pytest.fixture
def curator_api(curator):
    """A curator's client, authenticated by a session as a browser would be (CSRF checks off; see
    api/test_permissions for the check itself)."""
    client = APIClient()
    client.force_login(curator)
    return client


# --- datasets -----------------------------------------------------------------------------------------------------

@pytest.fixture
def faces(db):
    """Dataset "faces": four happy train images and one test image."""
    ds = DatasetFactory(name="faces")
    for i in range(4):
        ImageFactory(dataset=ds, original_label=1, label=1)
    ImageFactory(dataset=ds, split="test")
    return ds


CONFIRMED, RELABELLED, EXCLUDED = Image.Status.CONFIRMED, Image.Status.RELABELLED, Image.Status.EXCLUDED


def reviewed_image(ds, label, status, ambiguity=None, suspicion=None, **kw):
    """An image whose review set its truth: relabelled ones moved to the next label."""
    new_label = (label + 1) % 8 if status == RELABELLED else label
    return ImageFactory(dataset=ds, original_label=label, label=new_label, status=status, ambiguity=ambiguity,
                        suspicion=suspicion, **kw)


@pytest.fixture
def reviewed(db):
    """Dataset "calib" for threshold calibration. happy (1): 8 wrong at SSIM 0.80-0.87, 2 confirmed above them
    (0.90, 0.91) and 20 confirmed below (0.50-0.69). sad (2): 5 reviewed, 3 wrong: too few. neutral (0): no SSIM
    (no generator leaves it), suspicion only: 5 wrong at 0.90-0.94, 15 confirmed at 0.10-0.24. Plus images that
    must not count: unreviewed, and reviewed val images."""
    ds = DatasetFactory(name="calib")
    for k in range(8):
        reviewed_image(ds, 1, (RELABELLED, EXCLUDED)[k % 2], ambiguity=0.80 + k / 100, suspicion=0.5)
    for a in (0.90, 0.91):
        reviewed_image(ds, 1, CONFIRMED, ambiguity=a, suspicion=0.5)
    for k in range(20):
        reviewed_image(ds, 1, CONFIRMED, ambiguity=0.50 + k / 100, suspicion=0.5)
    for k in range(5):
        reviewed_image(ds, 2, RELABELLED if k < 3 else CONFIRMED, ambiguity=0.3, suspicion=0.5)
    for k in range(5):
        reviewed_image(ds, 0, EXCLUDED, suspicion=0.90 + k / 100)
    for k in range(15):
        reviewed_image(ds, 0, CONFIRMED, suspicion=0.10 + k / 100)
    for k in range(10):
        reviewed_image(ds, 1, Image.Status.UNREVIEWED, ambiguity=0.99, suspicion=0.99)
        reviewed_image(ds, 1, EXCLUDED, ambiguity=0.99, suspicion=0.99, split=Image.Split.VAL)
    return ds


def square_dataset(root, n=240, name="sq"):
    """Write n square images (tests.images.squares) with a CSV manifest (70/15/15 split) and import it through
    import_dataset; returns the dataset name."""
    from django.core.management import call_command
    from PIL import Image as PILImage

    x, y = squares(n)
    lines = ["path,label,split"]
    for i in range(n):
        PILImage.fromarray(x[i]).save(root / f"{i:04d}.png")
        split = "train" if i < 0.7 * n else "val" if i < 0.85 * n else "test"
        lines.append(f"{i:04d}.png,{EMOTIONS[y[i]]},{split}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    call_command("import_dataset", str(root / "labels.csv"), "--format", "csv", "--name", name, "--inline",
                 stdout=io.StringIO(), stderr=io.StringIO())
    return name


def square_gan_dataset(root, n=240):
    """square_dataset with a one-epoch happy/sad CycleGAN at 32 px trained on it; returns the dataset name."""
    from django.core.management import call_command

    name = square_dataset(root, n=n)
    call_command("train_cyclegan", "--dataset", name, "--pair", "happy", "sad", "--profile", "cpu", "--size", "32",
                 "--batch-size", "4", "--epochs", "1", "--epochs-decay", "0", "--inline", stdout=io.StringIO(),
                 stderr=io.StringIO())
    return name
