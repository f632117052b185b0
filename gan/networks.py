"""CycleGAN networks (Zhu et al. 2017, appendix 7.2): the ResNet generator and the 70x70 PatchGAN discriminator.

Generator: c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) x n_blocks, u(2 ngf), u(ngf), c7s1-3, tanh; reflection padding
and instance normalisation throughout (paper: 6 blocks for 128 px, 9 for 256 px and above). u(k) is the paper's
3x3 fractionally strided convolution (upsample="deconv", the default); upsample="resize" replaces it with nearest
neighbour x2 then a 3x3 convolution (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"), an option
for small CPU runs, where the transposed convolution's checkerboard has few epochs to fade.
Discriminator: C64-C128-C256-C512 with 4x4 convolutions and LeakyReLU 0.2, instance norm from the second layer,
then a 1-channel output map: each output judges a 70x70 patch of a 256 px input.
"""
from torch import nn


def _norm(channels):
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf=64, n_blocks=6, channels=3, upsample="deconv"):
        super().__init__()
        if upsample not in ("deconv", "resize"):
            raise ValueError(f"upsample must be 'deconv' or 'resize', not {upsample!r}")
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf), nn.ReLU(inplace=True)]
        width = ngf
        for _ in range(2):  # d(2 ngf), d(4 ngf): stride-2 downsampling
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2), nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResnetBlock(width) for _ in range(n_blocks)]
        for _ in range(2):  # u(2 ngf), u(ngf): fractionally strided convolutions, or resize-convolutions
            if upsample == "deconv":
                layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1)]
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(width, width // 2, 3)]
            layers += [_norm(width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):  # (B, 3, S, S) in [-1, 1] -> same shape in [-1, 1]
        return self.model(x)


class PatchDiscriminator(nn.Module):
    def __init__(self, ndf=64, n_layers=3, channels=3):
        super().__init__()
        layers = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1), _norm(out), nn.LeakyReLU(0.2, inplace=True)]
            width = out
        layers += [nn.Conv2d(width, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):  # (B, 3, S, S) -> (B, 1, S/8 - 2, S/8 - 2) real/fake scores per patch
        return self.model(x)


def init_weights(module, gain=0.02):
    """The paper's initialisation: weights from N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
