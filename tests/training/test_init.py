"""A pretrained start: the tensors whose names and shapes fit are taken, the rest stay as drawn and are named, and a
file for another architecture is refused."""
import pytest
import torch
from torchvision.models import resnet18

from training.init import InitError, init_weights
from training.models import build_model


def test_torchvision_resnet18_weights_start_the_products_resnet18_but_for_its_stem_and_head():
    source = resnet18(num_classes=1000).state_dict()  # as a user's torch.save'd ImageNet weights would be
    model = build_model("resnet18", 8, 64)
    report = init_weights(model, source, arch="resnet18")
    own = model.state_dict()
    # The 3x3 stride-1 stem (64 px) and the 8-class head differ from ImageNet's 7x7 stem and 1,000-class head.
    assert set(report["skipped"]) == {"conv1.weight", "fc.weight", "fc.bias"}
    assert report["loaded"] == len(source) - 3 and report["of"] == len(own)
    torch.testing.assert_close(own["layer3.0.conv1.weight"], source["layer3.0.conv1.weight"])
    assert not torch.equal(own["fc.bias"][:8], source["fc.bias"][:8])


def test_a_product_checkpoint_and_prefixed_weights_load_too():
    trained = build_model("small_cnn", 8, 32)
    checkpoint = {"model": {f"module.{k}": v for k, v in trained.state_dict().items()}, "config": {}}
    model = build_model("small_cnn", 8, 32)
    report = init_weights(model, checkpoint, arch="small_cnn")
    assert report["skipped"] == [] and report["loaded"] == report["of"]
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)


def test_weights_for_another_architecture_are_refused_by_name():
    with pytest.raises(InitError, match="none of its .* tensors fits small_cnn"):
        init_weights(build_model("small_cnn", 8, 32), resnet18().state_dict(), arch="small_cnn")
    with pytest.raises(InitError, match="no state dict"):
        init_weights(build_model("small_cnn", 8, 32), {"epoch": 3}, arch="small_cnn")
