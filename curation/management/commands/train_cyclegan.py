from pathlib import Path

from django.conf import settings

from curation.gans.snapshots import DIRECTIONS, direction_name, pair_generator, snapshot_quality
from curation.management.jobcommand import JobCommand
from curation.scoring.fusion import generator_works
from curation.models import GanModel
from training.labels import CLASSES


class Command(JobCommand):
    help = "Train a CycleGAN between two emotions of a dataset's train split (resumable; sample grids per epoch)."
    job_kind = "train_cyclegan"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--pair", nargs=2, required=True, metavar=("A", "B"), help="e.g. --pair happy sad")
        parser.add_argument("--profile", choices=["cpu", "full"], default="cpu",
                            help="cpu: small networks for CPUs; full: the paper's networks, for GPUs")
        parser.add_argument("--epochs", type=int, help="epochs at the initial learning rate")
        parser.add_argument("--epochs-decay", type=int, help="epochs of linear decay to zero")
        parser.add_argument("--size", type=int, help="image size in px (default 64)")
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--seed", type=int)

    def job_params(self, options):
        keys = ("dataset", "pair", "profile", "epochs", "epochs_decay", "size", "batch_size", "seed")
        return {k: options[k] for k in keys if options.get(k) is not None}

    def report(self, job):
        if not job.result:
            return
        gan = GanModel.objects.get(pk=job.result["gan"])
        a, b = CLASSES[gan.source_label], CLASSES[gan.target_label]
        self.stdout.write(f"CycleGAN {gan.pk} {a} <-> {b}: {gan.epoch} epochs on {gan.n_source} {a} and "
                          f"{gan.n_target} {b} train images")
        for e in gan.losses:
            q = e.get("quality")
            if not q:
                continue
            line = f"  epoch {e['epoch']:>3}: cycle {e['cycle']:.3f}"
            for direction, (src, dst) in (("AB", (a, b)), ("BA", (b, a))):
                d = q[direction]
                rate = (f" classified {dst} {d['target_rate']:.0%} (sources {d['source_target_rate']:.0%})"
                        if "target_rate" in d else "")
                line += f" | {src}->{dst}: SSIM {d['ssim_to_source']:.3f}{rate}"
            self.stdout.write(line)
        epoch, quality = snapshot_quality(gan)
        for direction in DIRECTIONS:
            works = generator_works(quality.get(direction))
            verdict = {True: "passed", False: "FAILED", None: "was not measured by"}[works]
            self.stdout.write(f"  {direction_name(gan, direction)} generator {verdict} its quality check at epoch "
                              f"{epoch} (the snapshot scoring and generation use)"
                              + (": generate_images skips it unless --include-failing" if works is False else ""))
        in_use = pair_generator(gan.dataset_id, gan.source_label, gan.target_label)
        if in_use is not None and in_use.pk != gan.pk:  # a curator chose another run of this pair
            self.stdout.write(f"  note: scoring, the review card and generation use CycleGAN {in_use.pk} for {a} <-> "
                              f"{b}, chosen by a curator; choose this one on the dataset's generators page")
        grids = Path(settings.MEDIA_ROOT) / gan.losses[-1]["samples"].rsplit("/", 1)[0]
        self.stdout.write(f"  sample grids: {grids.resolve()}/")
