"""CycleGANs between emotion pairs, image generation, SSIM and ambiguity scoring: pure PyTorch + numpy, no Django."""
