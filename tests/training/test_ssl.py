"""Self-supervised pretraining (training/ssl.py): the contrastive loss tells an image's two views from other
images', VICReg's loss rewards agreeing views and punishes a collapsed embedding, pretraining lowers either, the
same seed gives the same backbone and a resumed run the same one as an unbroken run, and the saved backbone starts
the classifier with every tensor but the class layer's."""
import copy

import numpy as np
import pytest
import torch

from tests.images import squares
from training.init import init_weights
from training.models import build_model
from training.ssl import backbone_file, build_backbone, class_layer_name, nt_xent, pretrain, vicreg_loss
from training.ssl_config import SSLConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(**kw):
    return SSLConfig(**{"arch": "small_cnn", "size": 32, "epochs": 3, "batch_size": 32, "seed": 0, **kw})


def test_the_loss_is_lower_for_two_views_of_one_image_than_for_shuffled_pairs():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(64, 16, generator=g)
    views = z1 + 0.3 * torch.randn(64, 16, generator=g)  # the same images, slightly changed
    shuffled = views[torch.randperm(64, generator=g)]
    matched, mismatched = nt_xent(z1, views).item(), nt_xent(z1, shuffled).item()
    # Chance is log(2B - 1) = 4.8: shuffled partners score worse than chance, true ones far better.
    assert matched < 2.0 and mismatched > np.log(127) > matched + 2.5


def test_vicregs_loss_rewards_agreeing_views_and_punishes_a_collapsed_embedding():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(64, 32, generator=g)
    views = z1 + 0.3 * torch.randn(64, 32, generator=g)
    shuffled = views[torch.randperm(64, generator=g)]
    assert vicreg_loss(z1, views).item() + 20 < vicreg_loss(z1, shuffled).item()
    # Every image mapped to one point: the views agree perfectly, but the variance hinge costs 25 x (1 - 0.01) (std 0
    # everywhere, 0.01 with the loss's epsilon).
    collapsed = torch.ones(64, 32)
    assert vicreg_loss(collapsed, collapsed).item() == pytest.approx(24.75, abs=0.01)
    assert vicreg_loss(z1, z1).item() < 5.0
    # Two dimensions that copy each other cost covariance that independent ones do not.
    copied = torch.cat([z1[:, :16], z1[:, :16]], dim=1)
    assert vicreg_loss(copied, copied).item() > vicreg_loss(z1, z1).item() + 0.5


@pytest.mark.parametrize("method", ["simclr", "vicreg"])
def test_pretraining_lowers_the_loss_and_is_the_same_for_the_same_seed(method):
    x, _ = squares(96, size=32)
    first = pretrain(_tiny(epochs=4, method=method), x)
    losses = [h["loss"] for h in first.history]
    assert losses[-1] < losses[0] - 0.1, losses
    again = pretrain(_tiny(epochs=4, method=method), x)
    other = pretrain(_tiny(epochs=4, seed=1, method=method), x)
    for name, value in first.backbone.items():
        assert torch.equal(value, again.backbone[name]), name
    assert not torch.equal(first.backbone["features.0.weight"], other.backbone["features.0.weight"])


def test_a_resumed_pretraining_ends_where_an_unbroken_one_does():
    x, _ = squares(64, size=32)
    unbroken = pretrain(_tiny(epochs=2), x)
    saved = []
    pretrain(_tiny(epochs=2), x, on_epoch=lambda ckpt: saved.append(copy.deepcopy(ckpt)) if ckpt["epoch"] == 1 else None)
    resumed = pretrain(_tiny(epochs=2), x, resume=saved[0])
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for name, value in unbroken.backbone.items():
        torch.testing.assert_close(resumed.backbone[name], value, msg=name)


def test_the_method_chosen_is_the_one_trained():
    x, _ = squares(64, size=32)
    simclr, vicreg = pretrain(_tiny(epochs=1), x), pretrain(_tiny(epochs=1, method="vicreg"), x)
    # Same seed, images and order: only the head and the loss differ. NT-Xent starts near log(2B - 1) = 4.1;
    # VICReg's loss starts far above it (the variance hinge alone is up to 25).
    assert simclr.history[0]["loss"] < 4.5 < 10 < vicreg.history[0]["loss"]
    assert not torch.equal(simclr.backbone["features.0.weight"], vicreg.backbone["features.0.weight"])


def test_an_unknown_method_is_refused_by_name():
    x, _ = squares(64, size=32)
    with pytest.raises(ValueError, match="method must be one of simclr, vicreg, not 'byol'"):
        pretrain(_tiny(method="byol"), x)


def test_fewer_images_than_one_batch_are_refused_by_name():
    x, _ = squares(20, size=32)
    with pytest.raises(ValueError, match="20 images are fewer than one batch of 32"):
        pretrain(_tiny(), x)


def test_the_saved_backbone_starts_the_classifier_with_every_tensor_but_the_class_layer(tmp_path):
    x, _ = squares(64, size=32)
    cfg = _tiny(epochs=1)
    result = pretrain(cfg, x)
    torch.save(backbone_file(result, cfg), tmp_path / "backbone.pt")
    loaded = torch.load(tmp_path / "backbone.pt", weights_only=True)
    model = build_model("small_cnn", 8, 32)
    report = init_weights(model, loaded, arch="small_cnn")
    assert report["skipped"] == [] and report["loaded"] == report["of"] - 2  # all but head.3's weight and bias
    own = model.state_dict()
    assert set(own) - set(result.backbone) == {"head.3.weight", "head.3.bias"}
    for name, value in result.backbone.items():
        assert torch.equal(own[name], value), name


@pytest.mark.parametrize("arch, size, layer", [("small_cnn", 32, "head.3"), ("resnet18", 32, "fc"),
                                               ("seed_cnn", 64, "classifier.13")])
def test_each_architectures_backbone_is_the_classifier_less_its_class_layer(arch, size, layer):
    classifier = build_model(arch, 8, size)
    assert class_layer_name(classifier) == layer
    backbone, width = build_backbone(arch, size)
    names = set(classifier.state_dict()) - set(backbone.state_dict())
    assert names == {f"{layer}.weight", f"{layer}.bias"}
    assert backbone(torch.rand(2, 3, size, size)).shape == (2, width)
