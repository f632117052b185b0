"""Near-duplicates and train/test leaks.

detect.py: per-image features (a perceptual hash, a colour thumbnail) and the pairs and groups they link; pure
numpy/Pillow and faiss's inverted file (imported inside the search), no Django; align.py: the second look at each
link (the two pictures aligned and compared). params.py and handler.py: the
find_duplicates job, which stores the groups (DuplicateMember). leaks.py: what pages, the API and commands read
(dataset_leaks, stored per dataset and refreshed by leaks_refresh wherever its inputs change; the groups, the current
test split's hash, runs scored on an earlier one) and the two writes, excluding the leaked test images or their
train/val copies. leaks.py never imports faiss.
"""
