"""The duplicate finder's own pHash (curation/duplicates/detect.py, vectorised over batches) is imagehash's pHash:
the same 64 bits for the same picture, its mirror variant included. imagehash is the reference here only; the
product does not import it."""
import imagehash
import numpy as np
from PIL import Image, ImageOps

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
