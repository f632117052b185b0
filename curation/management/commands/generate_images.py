from curation.management.jobcommand import JobCommand


class Command(JobCommand):
    help = "Generate images with a trained CycleGAN pair from train-split sources (both directions), for --augmented."
    job_kind = "generate_images"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--pair", nargs=2, required=True, metavar=("A", "B"))
        parser.add_argument("--n", type=int, required=True, help="images per direction (capped by the sources)")
        parser.add_argument("--seed", type=int, default=0)

    def job_params(self, options):
        return {k: options[k] for k in ("dataset", "pair", "n", "seed") if options.get(k) is not None}

    def report(self, job):
        if job.result:
            for direction, n in job.result["generated"].items():
                self.stdout.write(f"{direction}: {n} generated images")
