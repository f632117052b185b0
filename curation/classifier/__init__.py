"""The classifier jobs: which images a run trains on (selection.py), the on-disk tensor cache (arrays.py), and the
training job itself (job.py). The only place that knows both the database and training/."""
