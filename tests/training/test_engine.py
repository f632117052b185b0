"""The training package on its own (no Django): it learns, checkpoints round-trip, and a resumed fit continues."""
import io

import numpy as np
import pytest
import torch

from tests.images import squares
from training.config import TrainConfig
from training.engine import best_weights_checkpoint, fit, load_model, predict_proba
from training.placement import to_device_u8
from training.models import ARCHITECTURES, build_model, count_parameters


def tiny_config(**kw):
    return TrainConfig(**{"arch": "small_cnn", "size": 64, "epochs": 4, "batch_size": 32, "num_threads": 2,
                          "early_stopping_patience": 0, **kw})


def test_the_kept_epoch_is_the_most_accurate_on_noisy_validation_labels_unless_asked_for_loss():
    from training.engine import improved

    # As on a val split with wrong labels: the model grows more accurate and more confident, so the loss on the
    # wrong labels rises with the accuracy. By accuracy the later epoch is kept; by loss the earlier one.
    best = {"val_loss": 1.10, "val_acc": 0.60, "epoch": 3}
    later = {"loss": 1.25, "acc": 0.66}
    assert improved(later, best, "val_acc") and not improved(later, best, "val_loss")
    assert improved({"loss": 1.0, "acc": 0.60}, best, "val_acc")  # a tie in accuracy goes to the lower loss
    assert not improved({"loss": 1.2, "acc": 0.60}, best, "val_acc")
    with pytest.raises(ValueError, match="monitor must be val_acc or val_loss"):
        tiny_config(monitor="f1").validate()


def test_seed_cnn_matches_the_published_size():
    assert 2.0e6 < count_parameters(build_model("seed_cnn", 8, 64)) < 2.2e6


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_gives_class_scores(arch):
    size = 64 if arch == "seed_cnn" else 32
    model = build_model(arch, 8, size).eval()
    assert model(torch.zeros(3, 3, size, size)).shape == (3, 8)


def test_a_tiny_model_beats_chance_by_a_wide_margin():
    x, y = squares(480)
    result = fit(tiny_config(), x[:320], y[:320], x[320:400], y[320:400], device="cpu")
    probs = predict_proba(result.model, to_device_u8(x[400:], "cpu"), batch_size=64, device=torch.device("cpu"))
    assert (probs.argmax(1) == y[400:]).mean() > 0.6  # chance is 0.125


def test_checkpoint_round_trip_gives_identical_predictions():
    x, y = squares(160)
    cfg = tiny_config(epochs=1)
    result = fit(cfg, x[:128], y[:128], x[128:], y[128:], device="cpu")
    buf = io.BytesIO()
    torch.save(best_weights_checkpoint(cfg, result), buf)
    buf.seek(0)
    model, loaded_cfg = load_model(torch.load(buf, weights_only=True), device="cpu")
    inputs = to_device_u8(x, "cpu")
    before = predict_proba(result.model, inputs, batch_size=64, device=torch.device("cpu"))
    after = predict_proba(model, inputs, batch_size=64, device=torch.device("cpu"))
    assert loaded_cfg == cfg
    np.testing.assert_array_equal(before, after)


def test_a_resumed_fit_continues_from_the_saved_epoch_and_matches_an_uninterrupted_one():
    x, y = squares(160)
    cfg = tiny_config(epochs=3, augment=True)
    saved = []
    whole = fit(cfg, x[:128], y[:128], x[128:], y[128:], device="cpu",
                on_epoch=lambda c: saved.append(torch.load(_roundtrip(c), weights_only=True)))
    resumed = fit(cfg, x[:128], y[:128], x[128:], y[128:], device="cpu", resume=saved[0])
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    # Same seeded order and augmentation after the resume point: the same weights as the uninterrupted run.
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_bad_config_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="seed_cnn's valid convolutions need at least 60 px"):
        TrainConfig(arch="seed_cnn", size=32).validate()
    with pytest.raises(ValueError, match="arch must be one of"):
        TrainConfig(arch="vgg").validate()


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf
