"""Dataset importers: scan a source into candidates (sources.py), validate each file (validate.py), and write
Image rows in resumable batches (the import_dataset job: params.py, handler.py; import_predictions:
predictions_params.py, predictions_handler.py)."""
