"""Developer benchmarks, apart from the product: each prints its figures beside a baseline or ceiling measured in
the same run, and asserts nothing. Run each from the repository root as `python -m benchmarks.NAME [options]`
(`--help` lists the options); the ones that use the database set Django up themselves (benchmarks._django) and
work on the configured database with throwaway rows. The figures are in docs/benchmarks.md.

import_dataset: import job throughput (images/s) against only reading, decoding and hashing the files.
export: the CSV export through the WSGI handler (wall time, peak RSS) against only reading the rows.
pages: the run comparison and the jobs page against reading the snapshots / one page of jobs with no counts.
review_load: reviewers claiming and deciding over HTTP (gunicorn) against the services in-process (PostgreSQL).
soak: reviewers against gunicorn + a Celery worker (PostgreSQL, Redis), worker killed and Redis restarted midway.
score_chunks: the SSIM phase of score_ambiguity by chunk size against one chunk per generator direction.
synthetic_faces: synthetic face generation (faces/s, one core) against only encoding and writing PNGs.
train_speed: classifier training with the real data pipeline against the model-only ceiling.
accuracy: test accuracy of each architecture on the clean and on the noisy labels of synthetic faces.
gan_train_speed: the CycleGAN training step (ours) against plain eager float32.
gan_score_speed: scoring (generator + SSIM on the device) against the published per-image skimage pipeline.
gan_quality: whether a CycleGAN between two emotions translates them, judged by a classifier on true labels.

The cleaning benchmark is not here: it is a product command (`manage.py bench_cleaning`, curation/cleaning_bench/).
"""
