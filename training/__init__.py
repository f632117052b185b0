"""Emotion classifier: pure PyTorch + numpy, no Django (models, tensor cache, training loop, metrics, plots)."""
