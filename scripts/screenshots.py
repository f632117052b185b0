"""Make the screenshots of the review queue and the grid that README.md and docs/usage.md show (review_queue.png and
review_grid.png) from a small scored dataset of synthetic faces, in the system Chromium:

    .venv/bin/python scripts/screenshots.py --out docs/img

It works in a throwaway data folder (its own SQLite database and media, removed at the end), serves the site with
`manage.py runserver` on a free local port, signs in through the log-in form with Playwright driving
/usr/bin/chromium (no browser is downloaded) and writes the two PNGs into --out, replacing only those two files.
"""
import argparse
import csv
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PASSWORD = "screenshots"
FILES = ("review_queue.png", "review_grid.png")
TIMEOUT_MS = 30_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder the PNGs are written to (e.g. docs/img)")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    if not os.path.exists(CHROMIUM):
        parser.error(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        parser.error("playwright is not installed (.venv/bin/pip install -r requirements-dev.txt)")
    return args


def setup_django(data_dir):
    """Point Django at a fresh data folder (SQLite, filesystem broker) and create the tables."""
    os.environ["FER_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "fer_site.settings.dev"
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "FER_MEDIA_ROOT"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def scored_dataset(work, media):
    """480 synthetic faces, the train split given made-up scores; the most detailed happy face leads the queue with
    CycleGAN transformations, stand-in generated images and the classifier's out-of-fold guess. Returns (top,
    images)."""
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageOps

    from curation.models import Dataset, GanModel, GeneratedImage, Image, Run, TransformScore
    from training.labels import parse_label
    from training.synthetic_faces import make_synthetic_faces

    make_synthetic_faces(work / "faces", n=480, seed=3)
    root = media / "datasets" / "faces"
    shutil.copytree(work / "faces" / "images", root / "images")
    ds = Dataset.objects.create(name="faces", format=Dataset.Format.CSV, source=str(work / "faces"))
    rng = random.Random(0)
    with open(work / "faces" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
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
            stand_in.save(root / f"generated_{target}.png")
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
    return top, images


def review_history(top, images):
    """A relabel of the top face undone (it shows in its history) and five confirmations by alice."""
    from django.contrib.auth import get_user_model

    from curation.models import Image
    from curation.review.services import image_decide, review_undo

    users = get_user_model().objects
    alice = users.create_user("alice", password=PASSWORD)
    bob = users.create_user("bob", password=PASSWORD)
    image_decide(user=bob, image_id=top.pk, action="relabel", label=6, version=1, seconds_spent=3.1)
    review_undo(user=bob)
    Image.objects.filter(pk=top.pk).update(claimed_by=None, claim_expires_at=None)
    for im in [im for im in images if im.split == "train" and im.pk != top.pk][:5]:
        image_decide(user=alice, image_id=im.pk, action="confirm", version=1, seconds_spent=2.4)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`manage.py runserver` (debug: it serves /static/ and /media/) on the throwaway data folder."""

    def __init__(self, data_dir):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = data_dir / "runserver.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", self.url.rsplit("/", 1)[1], "--noreload"],
            cwd=REPO, env=dict(os.environ), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runserver exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"runserver did not answer /healthz within {timeout} s:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()


def take_screenshots(url, top, out):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/login/?next=/review/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/review/")

            page.goto(f"{url}/review/?dataset=faces&label=1")
            page.wait_for_selector(f'#card[data-image-id="{top.pk}"]')
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "review_queue.png"), full_page=True)

            page.goto(f"{url}/review/grid/?dataset=faces&label=1&status=any")
            page.wait_for_selector("#grid label.tile")
            page.wait_for_load_state("networkidle")
            tiles = page.locator("#grid label.tile")
            tiles.nth(1).click()
            tiles.nth(4).click(modifiers=["Shift"])
            tiles.nth(7).click()
            page.screenshot(path=str(out / "review_grid.png"), full_page=False)
        finally:
            browser.close()


def main(argv=None):
    args = parse_args(argv)
    out = args.out.resolve()
    work = Path(tempfile.mkdtemp(prefix="fer-screenshots-"))
    server = None
    try:
        setup_django(work)
        from django.conf import settings

        top, images = scored_dataset(work, Path(settings.MEDIA_ROOT))
        review_history(top, images)
        server = Server(work)
        server.wait_ready()
        shots = work / "shots"
        shots.mkdir()
        take_screenshots(server.url, top, shots)
        for name in FILES:  # a blank page is a few KiB: check before anything in --out is replaced
            size = (shots / name).stat().st_size
            if size < 10_000:
                raise SystemExit(f"{name} is only {size} bytes: the page did not render; the server said:\n"
                                 f"{server.log()}")
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(shots / name, out / name)
            print(f"wrote {out / name} ({(out / name).stat().st_size // 1024} KiB)")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
