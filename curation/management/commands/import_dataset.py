from curation.importers.sources import SCANNERS
from curation.management.jobcommand import JobCommand


class Command(JobCommand):
    help = "Import a facial-expression dataset (AffectNet layout, FER2013 CSV, image folder or CSV manifest)."
    job_kind = "import_dataset"

    def add_job_arguments(self, parser):
        parser.add_argument("path", help="dataset root, FER2013 CSV, or CSV manifest")
        parser.add_argument("--format", required=True, choices=sorted(SCANNERS))
        parser.add_argument("--name", required=True, help="dataset name (letters, digits, _ . -)")
        parser.add_argument("--seed", type=int, default=0, help="seed for carving missing splits (frozen once carved)")
        parser.add_argument("--test-fraction", type=float, default=0.15)
        parser.add_argument("--val-fraction", type=float, default=0.1)

    def job_params(self, options):
        return {
            "path": options["path"],
            "format": options["format"],
            "name": options["name"],
            "seed": options["seed"],
            "test_fraction": options["test_fraction"],
            "val_fraction": options["val_fraction"],
        }

    def report(self, job):
        r = job.result
        if not r:
            return
        out = self.stdout.write
        out(f"dataset {r['dataset']} ({r['format']}) from {r['source']}")
        out(f"  files found:        {r['files_found']}")
        out(f"  added:              {r['added']} (train {r['added_by_split']['train']}, val {r['added_by_split']['val']}, test {r['added_by_split']['test']})")
        out(f"  already present:    {r['already_present']}")
        if r.get("already_present_other_label"):
            out(f"    of which {r['already_present_other_label']} now carry another label in the source: kept the "
                f"stored label (change labels through review)")
        for reason, n in sorted(r["skipped_not_emotion"].items()):
            out(f"  skipped ({reason}): {n} (AffectNet code that is not an emotion)")
        out(f"  bad files:          {r['bad_count']}")
        for reason, n in sorted(r["bad_counts"].items()):
            out(f"    {reason}: {n}")
        for item in r["bad"]:
            out(f"  BAD {item['path']}: {item['reason']}: {item['detail']}")
        if r["bad_count"] > len(r["bad"]):
            out(f"  ... and {r['bad_count'] - len(r['bad'])} more, counted above but not named")
        carved = [s for s, yes in r["carved"].items() if yes]
        if carved:
            out(f"  carved split(s): {', '.join(carved)} (stratified, seeded, frozen)")
        out(f"  dataset now: {r['dataset_splits']}")
