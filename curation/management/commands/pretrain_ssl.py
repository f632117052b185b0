from curation.classifier.pretrain_params import DEFAULTS
from curation.management.jobcommand import JobCommand
from training.config import ARCH_NAMES
from training.ssl_config import SSL_METHODS


class Command(JobCommand):
    help = ("Pretrain the classifier's backbone without labels (SimCLR or VICReg) on every image of a dataset but its "
            "test split's; start a run from it with train_classifier --init ssl:JOB_ID.")
    job_kind = "pretrain_ssl"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--method", choices=list(SSL_METHODS),
                            help=f"the self-supervised method (default {DEFAULTS['method']})")
        parser.add_argument("--arch", choices=list(ARCH_NAMES),
                            help=f"the classifier whose backbone is pretrained (default {DEFAULTS['arch']}); the "
                                 f"run that starts from it trains the same one")
        parser.add_argument("--size", type=int, help=f"image size in px (default {DEFAULTS['size']})")
        parser.add_argument("--epochs", type=int, help=f"default {DEFAULTS['epochs']}")
        parser.add_argument("--batch-size", type=int,
                            help=f"images a step, each seen as two views (default {DEFAULTS['batch_size']}); the "
                                 f"dataset needs at least this many images outside its test split")
        parser.add_argument("--lr", type=float, help=f"AdamW's learning rate, decayed to 0 (default {DEFAULTS['lr']})")
        parser.add_argument("--temperature", type=float, help=f"SimCLR's NT-Xent temperature (default "
                                                              f"{DEFAULTS['temperature']})")
        parser.add_argument("--seed", type=int)

    def job_params(self, options):
        keys = ("dataset", *DEFAULTS)
        return {k: options[k] for k in keys if options.get(k) is not None}

    def report(self, job):
        r = job.result
        if not r:
            return
        self.stdout.write(f"pretrained {r['arch']} ({r.get('method', 'simclr')}) at {r['size']} px on "
                          f"{r['images']:,} images of {r['dataset']} (test split left out), {r['epochs']} epochs: "
                          f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}")
        self.stdout.write(f"  weights: {r['weights']}")
        self.stdout.write(f"  start a run from them: python manage.py train_classifier --dataset {r['dataset']} "
                          f"--arch {r['arch']} --size {r['size']} --init {r['init']}")
