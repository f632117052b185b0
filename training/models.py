"""Classifier architectures behind one small registry: name -> builder(num_classes, size)."""
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import ResNet

from training.config import ARCH_NAMES


class SeedCNN(nn.Module):
    """The published experiment's network (a Keras model), for comparison.

    3x3 valid convolutions with 32, 64, 128, 256, 512 filters, each followed by batch norm and ReLU; max-pooling
    and dropout 0.25 after the first three blocks; then dense 256-128-64 with batch norm and dropout 0.5, and the
    class scores (softmax is in the loss). About 2.1 M parameters at 64 px (flattened 2x2x512).
    """

    def __init__(self, num_classes=8, size=64):
        super().__init__()
        layers, channels = [], 3
        for i, width in enumerate((32, 64, 128, 256, 512)):
            layers += [nn.Conv2d(channels, width, 3), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i < 3:
                layers += [nn.MaxPool2d(2), nn.Dropout(0.25)]
            channels = width
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 3, size, size)).numel()  # 2048 at 64 px
        dense, width = [], flat
        for out in (256, 128, 64):
            dense += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU(inplace=True), nn.Dropout(0.5)]
            width = out
        self.classifier = nn.Sequential(nn.Flatten(), *dense, nn.Linear(width, num_classes))

    def forward(self, x):  # x: (B, 3, S, S) float in [0, 1]
        return self.classifier(self.features(x))  # (B, num_classes) logits


class SmallCNN(nn.Module):
    """A small network for CPU runs (the demo, tests, quick checks): four conv-BN-ReLU stages of 32-256 channels,
    each halving the resolution, global average pooling, dropout, one linear layer. About 0.4 M parameters."""

    def __init__(self, num_classes=8, size=64):
        super().__init__()
        layers, channels = [], 3
        for width in (32, 64, 128, 256):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(channels, num_classes))

    def forward(self, x):  # (B, 3, S, S) -> (B, num_classes)
        return self.head(self.features(x))


def build_seed_cnn(num_classes, size):
    return SeedCNN(num_classes, size)


def build_resnet18(num_classes, size):
    """torchvision's resnet18 for small faces: a 3x3 stride-1 stem, and no initial max-pool below 96 px, so a
    64 px face is not reduced to 16 px before the first residual block. Trained from scratch (no weights)."""
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    if size < 96:
        model.maxpool = nn.Identity()
    return model


ARCHITECTURES = {
    "seed_cnn": build_seed_cnn,
    "resnet18": build_resnet18,
    "small_cnn": lambda num_classes, size: SmallCNN(num_classes, size),
}


assert set(ARCHITECTURES) == set(ARCH_NAMES), "training.config.ARCH_NAMES must name every architecture"


def build_model(arch, num_classes, size):
    return ARCHITECTURES[arch](num_classes, size)


def features_and_logits(model, x):
    """(logits, last conv feature map (B, K, h, w), final linear layer's weight (classes, K)) for the archs that
    end in global average pooling and one linear layer (small_cnn, resnet18): what class activation maps need.
    seed_cnn flattens a 2x2 map into dense layers, so it has none."""
    if isinstance(model, SmallCNN):
        features = model.features(x)
        return model.head(features), features, model.head[-1].weight
    if isinstance(model, ResNet):
        m = model
        features = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))
        return m.fc(torch.flatten(m.avgpool(features), 1)), features, m.fc.weight
    raise TypeError(f"{type(model).__name__} has no class activation maps (it does not end in global pooling and "
                    f"one linear layer)")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
