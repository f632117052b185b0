from curation.management.commands.train_classifier import Command as TrainCommand
from curation.models import Run


class Command(TrainCommand):
    help = ("Retrain the classifier on cleaned labels (--reduced) and/or with generated images (--augmented), "
            "with the settings of the dataset's latest run unless given; scored on the same test split.")

    def job_params(self, options):
        params = super().job_params(options)
        params.pop("folds", None)
        latest = Run.objects.filter(dataset__name=params.get("dataset"), status=Run.Status.SUCCEEDED).first() \
            if params.get("dataset") else Run.objects.filter(status=Run.Status.SUCCEEDED).first()
        if latest is not None:
            for key in ("arch", "size", "epochs", "batch_size", "lr", "seed", "monitor"):
                if key in latest.config:
                    params.setdefault(key, latest.config[key])
            params.setdefault("dataset", latest.dataset.name)
        params["folds"] = 0
        return params
