"""Scoring: SSIM of images against their CycleGAN transformations, classifier signals from cleanlab, and the fused
suspicion that orders the review queue. The score_ambiguity job: params.py, handler.py; its score_chunk parts:
chunk_params.py, chunk_handler.py."""
