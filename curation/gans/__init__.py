"""CycleGAN jobs: train a pair (train_cyclegan: params.py, handler.py), generate images for augmented retraining
(generate_images: generate_params.py, generate_handler.py)."""
