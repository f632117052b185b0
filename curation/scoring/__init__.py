"""Scoring: SSIM of images against their CycleGAN transformations, classifier signals from cleanlab, and the fused
suspicion that orders the review queue."""
