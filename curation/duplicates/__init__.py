"""Near-duplicates and train/test leaks.

detect.py: per-image features (a perceptual hash, a colour thumbnail) and the pairs and groups they link; pure
numpy/Pillow/imagehash, no Django. job.py: the find_duplicates job, which stores the groups (DuplicateMember).
leaks.py: what pages, the API and commands read (dataset_leaks, the current test split's hash, runs scored on an
earlier one) and the one write, excluding the leaked test images. leaks.py never imports imagehash.
"""
