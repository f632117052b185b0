"""The duplicate finder's own pHash (curation/duplicates/detect.py, vectorised over batches) is imagehash's pHash:
the same 64 bits for the same picture, its mirror variant included. imagehash is the reference here only; the
product does not import it."""
import imagehash
import numpy as np
from PIL import Image, ImageOps

from curation.duplicates import detect
from curation.duplicates.detect import describe, image_features


def _pictures(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        size = (int(rng.integers(40, 97)), int(rng.integers(40, 97)))
        # smooth structure (a gradient and a blob) plus noise, as photos have; RGB and greyscale
        yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
        base = 120 + 60 * np.sin(xx / (5 + k)) + 40 * np.cos(yy / (7 + k)) + rng.normal(0, 12, (size[1], size[0]))
        rgb = np.stack([base, base * 0.8 + 30, 255 - base], axis=-1).clip(0, 255).astype(np.uint8)
        out.append(Image.fromarray(rgb) if k % 3 else Image.fromarray(rgb).convert("L"))
    return out


def test_our_phash_is_imagehash_phash():
    for picture in _pictures(12):
        ours, _ = image_features(picture)
        assert ours == int(str(imagehash.phash(picture)), 16)


def test_the_mirror_variant_is_the_phash_of_the_mirrored_picture():
    pictures = _pictures(12, seed=1)
    features = describe(pictures)
    for k, picture in enumerate(pictures):
        mirrored = int(str(imagehash.phash(ImageOps.mirror(picture))), 16)
        # variant 0 is the mirror (detect.VARIANTS), computed from the image's own DCT with odd frequencies negated
        assert int(features.variant_hashes[k, 0]) == mirrored


def test_each_crop_variant_is_the_picture_cropped_and_resized():
    """The crops' features come from matrix products over small masters (detect._crop_features): they are those of
    the picture cropped at each of CROPS' boxes and shrunk by area averages, computed here by Pillow on the picture
    enlarged 10 times (so each crop box falls within a tenth of a pixel), and a crop moved the other way is not."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # sharp edges: a shift of a pixel shows
    picture = Image.fromarray(blocks).resize((64, 64), Image.NEAREST)
    big = picture.resize((640, 640), Image.NEAREST)
    own, _, grey_master, rgb_master = detect.thumbnails(picture)
    lows, thumbs = detect._crop_features(grey_master[None], rgb_master[None])

    def reference(dx, dy):
        box = detect._crop_box(640, 640, dx, dy)
        grey = np.asarray(big.convert("L").resize((detect.GREY, detect.GREY), Image.BOX, box=box), float)
        rgb = np.asarray(big.resize((detect.THUMB, detect.THUMB), Image.BOX, box=box), np.float32)
        return detect._DCT @ grey @ detect._DCT.T, rgb.reshape(-1)

    for c, (dx, dy) in enumerate(detect.CROPS.values()):
        low, rgb = reference(dx, dy)
        assert np.linalg.norm(lows[0, c] - low) < 0.01 * np.linalg.norm(low)
        assert np.linalg.norm(thumbs[0, c] - rgb) < 0.01 * np.linalg.norm(rgb)
        if dx:
            wrong, wrong_rgb = reference(-dx, dy)
            assert np.linalg.norm(lows[0, c] - wrong) > 0.05 * np.linalg.norm(wrong)
            assert np.linalg.norm(thumbs[0, c] - wrong_rgb) > 0.05 * np.linalg.norm(wrong_rgb)
