"""The CycleGAN on its own (no Django)."""
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan.cyclegan import CycleGAN, make_config, sample_grid, to_unit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("profile, size, blocks", [("cpu", 32, 3), ("full", 64, 6), ("full", 160, 9)])
def test_shapes_for_both_profiles(profile, size, blocks):
    cfg = make_config(profile, size=size)
    model = CycleGAN(cfg, "cpu")
    assert cfg.blocks == blocks
    x = to_unit(batch(2, size))
    with torch.no_grad():
        assert model.G_A(x).shape == x.shape and model.G_B(x).shape == x.shape
        patches = model.D_A(x)
    assert patches.shape[:2] == (2, 1) and patches.shape[-1] == size // 8 - 2  # PatchGAN output map


def test_resize_convolution_generator_keeps_the_shape_and_the_paper_default():
    assert make_config("full").upsample == "deconv" and make_config("cpu").upsample == "deconv"
    model = CycleGAN(make_config("cpu", size=32, upsample="resize"), "cpu")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.G_A.modules())
    x = to_unit(batch(2, 32))
    with torch.no_grad():
        assert model.G_A(x).shape == x.shape


def test_one_step_lowers_the_cycle_loss_on_a_fixed_batch():
    model = CycleGAN(make_config("cpu", size=32, pool_size=0), "cpu")
    a, b = to_unit(batch(4, seed=1)), to_unit(batch(4, seed=2))

    def cycle():
        with torch.no_grad():
            return (F.l1_loss(model.G_B(model.G_A(a)), a) + F.l1_loss(model.G_A(model.G_B(b)), b)).item()

    before = cycle()
    model.train_step(a, b)
    assert cycle() < before


def test_checkpoint_round_trip_continues_identically():
    cfg = make_config("cpu", size=32, batch_size=2)
    A, B = batch(4, seed=3), batch(4, seed=4)
    first = CycleGAN(cfg, "cpu")
    first.train_epoch(A, B)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    second = CycleGAN(cfg, "cpu")
    second.load_state_dict(torch.load(buf, weights_only=True))
    assert second.epoch == 1 and second.history == first.history
    # The same next epoch from the saved state as from the live one: nothing the run depends on was left out.
    # Bit-identical on one machine (both continue through the same kernels in one process), on any processor.
    assert first.train_epoch(A, B) == second.train_epoch(A, B)
    np.testing.assert_array_equal(first.translate(A).numpy(), second.translate(A).numpy())


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    cfg = make_config("cpu", size=32, epochs=2, epochs_decay=2)
    model = CycleGAN(cfg, "cpu")
    rates = []
    for _ in range(4):
        rates.append(model.opt_G.param_groups[0]["lr"])
        model.sched_G.step()
    rates.append(model.opt_G.param_groups[0]["lr"])
    # Two epochs at 2e-4, then two decaying epochs; the rate after the last epoch is zero.
    assert rates == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3, 0.0])


def test_sample_grid_has_six_rows_of_samples():
    model = CycleGAN(make_config("cpu", size=32), "cpu")
    grid = sample_grid(model, batch(3, seed=5), batch(3, seed=6))
    assert grid.shape == (6 * 32, 3 * 32, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:32, :32], batch(3, seed=5)[0].permute(1, 2, 0).numpy())
