"""Find a dataset's near-duplicate groups (a job), report them within and across splits with the train/test and
val/test leaks, and optionally exclude the leaked test images."""
from django.core.management.base import CommandError

from curation.duplicates.detect import MAX_COLOUR_DISTANCE, MAX_HASH_DISTANCE, MAX_RESIDUAL
from curation.duplicates.leaks import exclude_leaked_test_images, exclude_leaking_copies
from curation.management.jobcommand import JobCommand
from curation.models import Job
from curation.selectors import dataset_get


class Command(JobCommand):
    help = ("Find near-duplicate images of a dataset (perceptual hash and colour thumbnail, then each linked pair "
            "aligned and compared), stored as groups; report them within and across splits and the train/test and val/test leaks with the test "
            "images affected. --exclude-leaked-test then excludes those test images (the test split gets a new hash).")
    job_kind = "find_duplicates"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--max-hash-distance", type=int, default=MAX_HASH_DISTANCE, metavar="BITS",
                            help=f"pHash bits (of 64) two copies may differ by (default {MAX_HASH_DISTANCE})")
        parser.add_argument("--max-colour-distance", type=float, default=MAX_COLOUR_DISTANCE, metavar="D",
                            help=f"1 - cosine of the 8 x 8 colour thumbnails (default {MAX_COLOUR_DISTANCE})")
        parser.add_argument("--max-residual", type=float, default=MAX_RESIDUAL, metavar="R",
                            help="what a linked pair may differ by once aligned, in units of the picture's contrast "
                                 f"(default {MAX_RESIDUAL}; a large value keeps every link)")
        parser.add_argument("--exclude-leaked-test", action="store_true",
                            help="after finding them, exclude the test images that have a train or val copy")
        parser.add_argument("--exclude-leaking-copies", action="store_true",
                            help="after finding them, keep the test images and exclude their train and val copies "
                                 "instead (the test split stays)")

    def job_params(self, options):
        if options["exclude_leaked_test"] and options["exclude_leaking_copies"]:
            raise CommandError("give one of --exclude-leaked-test and --exclude-leaking-copies: a leak ends one way")
        for flag in ("exclude_leaked_test", "exclude_leaking_copies"):
            if options[flag] and options["no_wait"]:
                raise CommandError(f"--{flag.replace('_', '-')} needs the job's groups: leave out --no-wait")
        return {"dataset": options["dataset"], "max_hash_distance": options["max_hash_distance"],
                "max_colour_distance": options["max_colour_distance"], "max_residual": options["max_residual"]}

    def handle(self, *args, **options):
        self._exclude = options["exclude_leaked_test"]
        self._exclude_copies = options["exclude_leaking_copies"]
        super().handle(*args, **options)

    def report(self, job):
        r = job.result
        if not r:
            return
        out = self.stdout.write
        out(f"{r['groups']} near-duplicate group(s) of {r['grouped_images']} images among the {r['images']} of "
            f"{r['dataset']} ({r['pairs']} linked pairs)")
        out("  within one split: " + ", ".join(f"{s} {n}" for s, n in r["within"].items()))
        out("  across splits:    " + (", ".join(f"{s} {n}" for s, n in r["across"].items()) or "none"))
        for splits, leak in r["leaks"].items():
            out(f"  {splits} leaks: {leak['groups']} group(s), {leak['test_images']} test image(s) affected"
                + (f" ({leak['excluded']} more already excluded)" if leak["excluded"] else ""))
        if self._exclude_copies and job.status == Job.Status.SUCCEEDED:
            done = exclude_leaking_copies(dataset=dataset_get(name=r["dataset"]))
            n = len(done["excluded"])
            out(f"excluded {n} train/val cop{'y' if n == 1 else 'ies'} of test images; the test split stays"
                + (f"; {len(done['conflicts'])} changed meanwhile and were left as they are" if done["conflicts"]
                   else ""))
            return
        if not (self._exclude and job.status == Job.Status.SUCCEEDED):
            if r["leaked_test_images"]:
                out(f"  exclude the {r['leaked_test_images']} leaked test image(s) with --exclude-leaked-test, or "
                    f"their train/val copies with --exclude-leaking-copies")
            return
        done = exclude_leaked_test_images(dataset=dataset_get(name=r["dataset"]))
        out(f"excluded {len(done['excluded'])} leaked test image(s)"
            + (f"; {len(done['conflicts'])} changed meanwhile and were left as they are" if done["conflicts"] else ""))
        if done["test_split_hash_before"] != done["test_split_hash_after"]:
            out(f"  the test split changed: hash {done['test_split_hash_before'][:12]} -> "
                f"{done['test_split_hash_after'][:12]}; runs scored before are marked as scored on an earlier "
                f"test split")
