"""The classifier jobs: which images a run trains on (selection.py), the on-disk tensor cache (arrays.py), and the
jobs themselves, each kind's parameters apart from its worker code: train_classifier (params.py, handler.py),
pretrain_ssl (pretrain_params.py, pretrain_handler.py), rescore (rescore_params.py, rescore_handler.py) and
generate_retrain (generate_retrain_params.py, generate_retrain_handler.py). The only place that knows both the
database and training/."""
