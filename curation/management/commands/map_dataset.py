"""Compute a dataset's map (a job): a 2-D projection of the embeddings of the model feeding its queue, shown on
/datasets/<name>/map/. Reused until those embeddings change."""
from curation.management.jobcommand import JobCommand
from curation.maps.project import METHODS


class Command(JobCommand):
    help = ("Project the embeddings of the model feeding a dataset's queue onto two dimensions (UMAP where umap-learn "
            "is installed, else PCA) and store the map /datasets/<name>/map/ draws. A map of unchanged embeddings is "
            "reused, not recomputed (unless --force).")
    job_kind = "map_dataset"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--method", choices=METHODS, default="auto",
                            help="umap, pca, or auto (umap where umap-learn is installed; the default)")
        parser.add_argument("--force", action="store_true", help="recompute even if the embeddings are unchanged")
        parser.add_argument("--seed", type=int, default=0, help="UMAP's random state (default 0)")

    def job_params(self, options):
        return {"dataset": options["dataset"], "method": options["method"], "force": options["force"],
                "seed": options["seed"]}

    def report(self, job):
        r = job.result
        if r:
            self.stdout.write(f"map of {r['dataset']}: {r['points']:,} train images from run {r['run']}'s embeddings "
                              f"by {r['method']}" + (f" (reused: job {r['map_job']}'s, the embeddings are unchanged)"
                                                     if r["reused"] else f" in {r['seconds']} s"))
