"""Our batched SSIM against scikit-image's reference implementation."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from gan.ssim import ssim, to_grey


def pairs(n, size, channels, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, size, size, channels)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 60, a.shape), 0, 255).astype(np.uint8)
    return a, b


def nchw(x):
    return torch.from_numpy(x).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [16, 33, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("window", ["uniform", "gaussian"])
def test_matches_skimage_within_1e4(size, channels, window):
    a, b = pairs(4, size, channels, seed=size * channels)
    ours = ssim(nchw(a), nchw(b), data_range=255, window=window).numpy()
    gaussian = window == "gaussian"
    ref = [structural_similarity(a[i].squeeze(-1) if channels == 1 else a[i],
                                 b[i].squeeze(-1) if channels == 1 else b[i], data_range=255,
                                 channel_axis=None if channels == 1 else 2, gaussian_weights=gaussian, sigma=1.5,
                                 use_sample_covariance=not gaussian) for i in range(4)]
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_float_images_need_their_range_and_match_skimage():
    a, b = pairs(2, 32, 3, seed=9)
    fa, fb = a / 255.0, b / 255.0
    ours = ssim(nchw(fa), nchw(fb), data_range=1.0).numpy()
    ref = [structural_similarity(fa[i], fb[i], data_range=1.0, channel_axis=2) for i in range(2)]
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    with pytest.raises(ValueError, match="data_range"):
        ssim(nchw(fa), nchw(fb), data_range=None)


def test_grey_uses_rgb_luminance_weights_in_rgb_order():
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0
    assert to_grey(red).max().item() == pytest.approx(0.299)
    a, b = pairs(2, 32, 3, seed=3)
    grey_a = (a @ np.array([0.299, 0.587, 0.114]))
    grey_b = (b @ np.array([0.299, 0.587, 0.114]))
    ours = ssim(nchw(a), nchw(b), data_range=255, grey=True).numpy()
    ref = [structural_similarity(grey_a[i], grey_b[i], data_range=255) for i in range(2)]
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_identical_images_score_one():
    a, _ = pairs(2, 24, 3, seed=1)
    np.testing.assert_allclose(ssim(nchw(a), nchw(a), data_range=255).numpy(), 1.0, atol=1e-6)


@pytest.mark.parametrize("grey", [False, True])
def test_matches_skimage_on_synthetic_faces_and_their_blurred_copies(grey):
    from PIL import Image, ImageFilter

    from training.synthetic_faces import face, knobs

    faces = np.stack([face(7, i, "happy", 64, knobs(0.6))[0] for i in range(3)])
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(1.2))) for f in faces])
    ours = ssim(nchw(faces), nchw(blurred), data_range=255, grey=grey).numpy()
    if grey:
        w = np.array([0.299, 0.587, 0.114])
        ref = [structural_similarity(faces[i] @ w, blurred[i] @ w, data_range=255) for i in range(3)]
    else:
        ref = [structural_similarity(faces[i], blurred[i], data_range=255, channel_axis=2) for i in range(3)]
    np.testing.assert_allclose(ours, ref, atol=1e-4)
