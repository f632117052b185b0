from curation.classifier.params import with_latest_run_settings
from curation.management.commands.train_classifier import Command as TrainCommand


class Command(TrainCommand):
    help = ("Retrain the classifier on cleaned labels (--reduced) and/or with generated images (--augmented), "
            "with the settings of the dataset's latest run unless given; scored on the same test split. It starts "
            "from the latest run's start, else from the dataset's newest self-supervised pretraining (pretrain_ssl), "
            "unless --init says otherwise (--init scratch: a random start).")

    def with_defaults(self, params):
        params = with_latest_run_settings(params)
        params["folds"] = 0
        return params
