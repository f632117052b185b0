"""DivideMix (training/dividemix.py) on the tiny noisy squares: its Gaussian-mixture division, the labels it sets
aside (which then never pull on the weights, as they would under cross-entropy), trusted labels (never set aside or
refined) and a resumed run."""
import copy

import numpy as np
import pytest
import torch

from tests.images import squares
from training.config import TrainConfig
from training import engine
from training.dividemix import (divide, gmm_clean_probability, labelled_target, observe_divisions, per_image_loss,
                                train_divided_epoch)
from training.engine import fit, train_one_epoch
from training.placement import place_images

CPU = torch.device("cpu")


def config(**kw):
    base = dict(arch="small_cnn", size=32, epochs=4, batch_size=16, lr=0.01, label_smoothing=0.0, augment=False,
                num_threads=1, early_stopping_patience=0, robust="dividemix", dividemix_warmup=2, seed=0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def noisy_squares():
    """240 train squares with 40 % of class 0's labels flipped to class 1 (the wrong ones), 200 clean test squares."""
    x, y = squares(440, size=32, seed=1)
    x_train, y_train = x[:240], y[:240].copy()
    zeros = np.flatnonzero(y_train == 0)
    flipped = np.random.default_rng(0).choice(zeros, int(0.4 * len(zeros)), replace=False)
    y_train[flipped] = 1
    return x_train, y_train, flipped, x[240:], y[240:]


@pytest.fixture(scope="module")
def warmed(noisy_squares):
    """Two networks after four epochs of cross-entropy on the noisy labels (DivideMix's warm-up; the last epoch
    kept), and network B's per-image losses, which divide the train split for network A."""
    x_train, y_train, *_ = noisy_squares
    nets = [fit(config(robust="none", epochs=4, min_epochs=4, seed=s), x_train, y_train, x_train[:2], y_train[:2],
                device=CPU).model for s in (0, 1)]
    source, _ = place_images(x_train, CPU, mode="device")
    y = torch.as_tensor(y_train)
    loss, _ = per_image_loss(nets[1], source, y, cfg=config(), device=CPU, loop=engine)
    return nets, source, loss


def test_the_mixture_puts_low_losses_in_the_clean_component():
    rng = np.random.default_rng(0)
    losses = np.concatenate([rng.normal(0.2, 0.05, 200).clip(0), rng.normal(2.0, 0.3, 50)])
    clean = gmm_clean_probability(losses)
    assert clean[:200].min() > 0.9 and clean[200:].max() < 0.1
    assert np.array_equal(gmm_clean_probability(np.full(5, 0.7)), np.ones(5))  # nothing to divide
    trusted = np.zeros(250, bool)
    trusted[-10:] = True  # the highest losses, but a reviewer decided these labels
    divided = divide(losses, trusted)
    assert np.array_equal(divided[-10:], np.ones(10)) and divided[200:240].max() < 0.1


def test_the_division_after_the_warm_up_sets_the_flipped_labels_aside(noisy_squares, warmed):
    # After four epochs of cross-entropy the flipped labels have the higher losses: the division ranks them below
    # the right ones. Measured: AUROC 1.0, every flipped label set aside, every right one kept.
    _, y_train, flipped, *_ = noisy_squares
    *_, loss = warmed
    clean = divide(loss, None)
    right = np.ones(len(y_train), bool)
    right[flipped] = False
    pairs = clean[right][:, None] - clean[~right][None, :]
    auroc = (pairs > 0).mean() + 0.5 * (pairs == 0).mean()
    assert auroc > 0.85, auroc
    assert (clean[flipped] <= 0.5).mean() > 0.7 and (clean[right] > 0.5).mean() > 0.7


def _weights(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def _divided_step(warmed, y, clean, trusted_rows=(), steps=2):
    """Network A's weights after `steps` divided steps on labels y and division `clean`, from the warmed start."""
    nets, source, _ = warmed
    net, peer = copy.deepcopy(nets[0]), copy.deepcopy(nets[1])
    cfg = config()
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # dropout
    train_divided_epoch(net, peer, optimizer, None, source, torch.as_tensor(y), clean, cfg=cfg, device=CPU,
                        loop=engine, generator=generator, steps=steps, progress=4)
    return _weights(net)


def test_a_label_set_aside_never_pulls_on_the_weights_as_under_cross_entropy(noisy_squares, warmed):
    # The labels of the images the division set aside (the unlabelled set) are dropped: give them any other
    # labels and a divided step trains to the very same weights. Under cross-entropy every label pulls: the same
    # change moves the weights. A labelled image's label does count.
    _, y_train, flipped, *_ = noisy_squares
    *_, loss = warmed
    clean = divide(loss, None)
    aside = np.flatnonzero(clean <= 0.5)
    assert len(aside) >= 10
    other = y_train.copy()
    other[aside] = (other[aside] + 3) % 8
    base = _divided_step(warmed, y_train, clean)
    assert torch.equal(_divided_step(warmed, other, clean), base)
    kept = np.flatnonzero(clean > 0.9)
    moved = y_train.copy()
    moved[kept] = (moved[kept] + 3) % 8
    assert not torch.equal(_divided_step(warmed, moved, clean), base)

    nets, source, _ = warmed

    def cross_entropy_epoch(y):
        net = copy.deepcopy(nets[0])
        optimizer = torch.optim.AdamW(net.parameters(), lr=0.01)
        torch.manual_seed(0)
        train_one_epoch(net, optimizer, None, source, torch.as_tensor(y), cfg=config(robust="none"), device=CPU,
                        generator=torch.Generator().manual_seed(0), loss_weight=None)
        return _weights(net)

    assert not torch.equal(cross_entropy_epoch(other), cross_entropy_epoch(y_train))


def test_a_trusted_label_stays_labelled_and_unrefined_however_high_its_loss(noisy_squares, warmed):
    # The flipped images, marked trusted (a reviewer decided these labels): the division gives them clean
    # probability 1, so their target is their given label, exactly, and changing that label changes the step.
    _, y_train, flipped, *_ = noisy_squares
    *_, loss = warmed
    trusted = np.zeros(len(y_train), bool)
    trusted[flipped] = True
    clean = divide(loss, trusted)
    assert np.array_equal(clean[flipped], np.ones(len(flipped)))
    one_hot = torch.nn.functional.one_hot(torch.as_tensor(y_train[flipped]), 8).float()
    doubting = torch.softmax(torch.randn(len(flipped), 8, generator=torch.Generator().manual_seed(0)) * 3, 1)
    w = torch.as_tensor(clean[flipped], dtype=torch.float32)[:, None]
    assert torch.equal(labelled_target(one_hot, w, doubting), one_hot)
    refined = labelled_target(one_hot, torch.full_like(w, 0.6), doubting)  # an untrusted image's target moves
    assert (refined - one_hot).abs().max() > 0.05
    other = y_train.copy()
    other[flipped] = 5
    # Enough steps that every labelled image is drawn (each epoch draws permutations of the labelled set), so the
    # trusted images are in the batches whatever the division's numerics on this CPU
    steps = -(-len(y_train) // config().batch_size)
    assert not torch.equal(_divided_step(warmed, other, clean, steps=steps),
                           _divided_step(warmed, y_train, clean, steps=steps))


def test_a_dividemix_run_divides_every_epoch_after_the_warm_up_keeps_trusted_labels_and_resumes(noisy_squares):
    x_train, y_train, flipped, x_test, y_test = noisy_squares
    trusted = np.zeros(len(y_train), bool)
    trusted[flipped[:5]] = True
    seen, checkpoints = [], {}

    def on_divide(epoch, clean_a, clean_b):
        seen.append(epoch)
        assert np.array_equal(clean_a[flipped[:5]], np.ones(5)) and np.array_equal(clean_b[flipped[:5]], np.ones(5))

    with observe_divisions(on_divide):
        result = fit(config(), x_train, y_train, x_test, y_test, device=CPU, trusted=trusted,
                     on_epoch=lambda c: checkpoints.setdefault(c["epoch"], copy.deepcopy(c)))
    assert seen == [3, 4]
    assert [h["phase"] for h in result.history] == ["warm-up", "warm-up", "divided", "divided"]
    assert all(0 < h["labelled"] < len(y_train) for h in result.history[2:])
    assert set(checkpoints[3]) >= {"model", "model_b", "optimizer_b"}
    resumed = fit(config(), x_train, y_train, x_test, y_test, device=CPU, trusted=trusted, resume=checkpoints[3])
    assert torch.equal(_weights(resumed.model), _weights(result.model))
    # Every label trusted: nothing to divide, a plain cross-entropy run.
    everything = fit(config(epochs=1), x_train, y_train, x_test, y_test, device=CPU, trusted=np.ones(240, bool))
    plain = fit(config(epochs=1, robust="none"), x_train, y_train, x_test, y_test, device=CPU)
    assert torch.equal(_weights(everything.model), _weights(plain.model))
