"""CycleGAN jobs: train a pair (job.py), generate images for augmented retraining (generate.py)."""
