"""Dataset importers: scan a source into candidates (sources.py), validate each file (validate.py), and write
Image rows in resumable batches (job.py)."""
