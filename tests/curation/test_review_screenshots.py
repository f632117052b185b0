"""Makes the README's screenshots of the review queue and the grid (static/img/review_queue.png and
review_grid.png) from a small scored dataset of synthetic faces, in the system Chromium. Not a check: it runs only
when asked, and writes the files:

    FER_SCREENSHOTS=1 FER_DATA_DIR=var/test .venv/bin/pytest tests/curation/test_review_screenshots.py
"""
import csv
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from curation.models import (
    Dataset,
    GanModel,
    GeneratedImage,
    Image,
    Run,
    TransformScore,
)
from curation.review.services import image_decide
from tests.browser import log_in
from tests.factories import UserFactory
from training.synthetic_faces import make_synthetic_faces

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("FER_SCREENSHOTS") != "1", reason="set FER_SCREENSHOTS=1 to make "
                                                                                  "the README's screenshots")]

OUT = Path(__file__).resolve().parents[2] / "static" / "img"


def _scored_dataset(tmp_path, media):
    make_synthetic_faces(tmp_path / "faces", n=480, seed=3)
    root = media / "datasets" / "faces"
    shutil.copytree(tmp_path / "faces" / "images", root / "images")
    ds = Dataset.objects.create(name="faces", format=Dataset.Format.CSV, source=str(tmp_path / "faces"))
    rng = random.Random(0)
    with open(tmp_path / "faces" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    from training.labels import parse_label
    images = []
    for i, row in enumerate(rows):
        label = parse_label(row["label"])
        scored = row["split"] == "train"
        images.append(Image.objects.create(
            dataset=ds, path=row["path"], file=f"datasets/faces/{row['path']}", content_hash=f"{i:064x}",
            width=64, height=64, split=row["split"], original_label=label, label=label,
            suspicion=rng.random() if scored else None, ambiguity=rng.uniform(0.6, 0.95) if scored else None,
            flagged=scored and rng.random() < 0.3, classifier_flagged=scored and rng.random() < 0.3,
            gan_score=rng.gauss(0, 1) if scored else None, label_quality=rng.random() if scored else None))
    happy = [im for im in images if im.label == 1 and im.split == "train"]
    # The most detailed face (the largest PNG: the low-resolution captures compress best) leads the queue.
    top = max(happy, key=lambda im: (media / im.file).stat().st_size)
    Image.objects.filter(pk=top.pk).update(suspicion=1.0, flagged=True, classifier_flagged=True, ambiguity=0.88,
                                           gan_score=2.4, classifier_suggested_label=6, gan_suggested_label=2)
    for source, target, z in ((1, 2, 2.4), (1, 6, 1.1), (7, 1, -0.3)):
        gan = GanModel.objects.create(dataset=ds, source_label=source, target_label=target, epoch=16,
                                      status=GanModel.Status.SUCCEEDED)
        forward = source == 1
        TransformScore.objects.create(image=top, gan=gan, direction="AB" if forward else "BA",
                                      target_label=target if forward else source, epoch=16,
                                      ssim=0.88 if forward else 0.71, z=z)
        if forward:  # a stand-in for the generator's output (no generator is trained here): the face, altered
            face = PILImage.open(media / top.file).convert("RGB")
            tint = PILImage.new("RGB", face.size, (90, 110, 160) if target == 2 else (170, 60, 50))
            stand_in = PILImage.blend(ImageOps.mirror(face), tint, 0.18)
            stand_in.save(media / "datasets" / "faces" / f"generated_{target}.png")
            GeneratedImage.objects.create(gan=gan, source_image=top, target_label=target,
                                          file=f"datasets/faces/generated_{target}.png", content_hash=f"g{target}")
    run = Run.objects.create(dataset=ds, status=Run.Status.SUCCEEDED, arch="small_cnn", folds=3)
    folder = media / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    train = [im for im in images if im.split == "train"]
    probs = np.random.default_rng(0).dirichlet(np.ones(8) * 0.5, size=len(train)).astype(np.float32)
    probs[[im.pk for im in train].index(top.pk)] = [0.02, 0.31, 0.05, 0.02, 0.02, 0.08, 0.46, 0.04]
    np.savez(folder / "oof.npz", ids=np.array([im.pk for im in train]), labels=np.zeros(len(train), int), probs=probs)
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")
    return ds, top, images


@pytest.fixture
def page_for(live_server, transactional_db, _media_root, browser):
    def serve_media(route):
        path = _media_root / route.request.url.split("/media/", 1)[1]
        route.fulfill(body=path.read_bytes(), content_type="image/png") if path.exists() else route.abort()

    contexts = []

    def make(username, viewport):
        UserFactory(username=username)
        context = browser.new_context(viewport=viewport, device_scale_factor=1)
        context.route("**/media/**", serve_media)
        contexts.append(context)
        return log_in(context.new_page(), live_server, username, "/review/")

    yield make
    for context in contexts:
        context.close()


def test_make_the_review_screenshots(page_for, live_server, tmp_path, _media_root):
    ds, top, images = _scored_dataset(tmp_path, _media_root)
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    image_decide(user=bob, image_id=top.pk, action="relabel", label=6, version=1, seconds_spent=3.1)
    from curation.review.services import review_undo
    review_undo(user=bob)
    Image.objects.filter(pk=top.pk).update(claimed_by=None, claim_expires_at=None)
    for im in [im for im in images if im.split == "train" and im.pk != top.pk][:5]:
        image_decide(user=alice, image_id=im.pk, action="confirm", version=1, seconds_spent=2.4)
    page = page_for("alice", {"width": 1280, "height": 1000})
    page.goto(f"{live_server.url}/review/?dataset=faces&label=1")
    page.wait_for_selector(f'#card[data-image-id="{top.pk}"]')
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / "review_queue.png"), full_page=True)

    page.goto(f"{live_server.url}/review/grid/?dataset=faces&label=1&status=any")
    page.wait_for_selector("#grid label.tile")
    page.wait_for_load_state("networkidle")
    tiles = page.locator("#grid label.tile")
    tiles.nth(1).click()
    tiles.nth(4).click(modifiers=["Shift"])
    tiles.nth(7).click()
    page.screenshot(path=str(OUT / "review_grid.png"), full_page=False)
    assert (OUT / "review_grid.png").stat().st_size > 10_000
