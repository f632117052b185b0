from curation.management.jobcommand import JobCommand


class Command(JobCommand):
    help = "Generate images with a trained CycleGAN pair from train-split sources (both directions), for --augmented."
    job_kind = "generate_images"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--pair", nargs=2, required=True, metavar=("A", "B"))
        parser.add_argument("--n", type=int, required=True, help="images per direction (capped by the sources)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--include-failing", action="store_true",
                            help="also generate from a generator that failed its quality check (the classifier does "
                                 "not call its outputs the target class clearly more often than their sources)")

    def job_params(self, options):
        params = {k: options[k] for k in ("dataset", "pair", "n", "seed") if options.get(k) is not None}
        return {**params, "include_failing": bool(options.get("include_failing"))}

    def report(self, job):
        if job.result:
            checks = job.result.get("quality_check", {})
            for direction, n in job.result["generated"].items():
                check = checks.get(direction)
                note = {"failed": " (failed its quality check: nothing new generated; --include-failing to force)",
                        "unchecked": " (quality not measured: no classifier when the CycleGAN trained)"}.get(check, "")
                self.stdout.write(f"{direction}: {n} generated images{note}")
