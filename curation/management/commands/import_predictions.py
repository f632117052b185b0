"""Import a user's own model's predictions (and embeddings) as a model of a dataset (a job)."""
from curation.importers.predictions import SUM_TOLERANCE
from curation.management.jobcommand import JobCommand
from training.labels import CLASSES


class Command(JobCommand):
    help = (f"Import your own model's predictions for a dataset's images: a CSV or Parquet FILE of `path` and 8 "
            f"class probabilities (columns named by class, or in AffectNet's order: {', '.join(CLASSES)}); rows must "
            f"sum to 1 within {SUM_TOLERANCE}, or are logits (any value outside 0-1), softmaxed. Optionally the "
            f"model's embeddings (.npy in FILE's row order, or Parquet keyed by path) for Datalab's neighbours. A "
            f"file with any bad row is refused whole. The predictions become a run that can feed the review queue "
            f"(--feed-queue, or later `review_settings NAME --queue-model ID`), scored by score_ambiguity.")
    job_kind = "import_predictions"

    def add_job_arguments(self, parser):
        parser.add_argument("file", help="predictions: CSV or Parquet of path + 8 classes (below FER_IMPORT_ROOTS)")
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--embeddings", metavar="FILE",
                            help=".npy (one row per FILE row, in its order) or Parquet keyed by path")
        sample = parser.add_mutually_exclusive_group(required=True)
        sample.add_argument("--out-of-sample", dest="out_of_sample", action="store_true", default=None,
                            help="the model never trained on these images' labels (cross-validated, or trained "
                                 "on other data)")
        sample.add_argument("--in-sample", dest="out_of_sample", action="store_false",
                            help="the model trained on these images' labels: label-issue scores are optimistic")
        parser.add_argument("--feed-queue", action="store_true",
                            help="make this model the one that feeds the dataset's queue (at the next scoring)")
        parser.add_argument("--name", help="a name for the model (default: the file's name)")

    def job_params(self, options):
        return {"dataset": options["dataset"], "path": options["file"], "embeddings": options["embeddings"],
                "out_of_sample": options["out_of_sample"], "feed_queue": options["feed_queue"],
                "name": options["name"]}

    def report(self, job):
        r = job.result
        if not r:
            return
        out = self.stdout.write
        out(f"imported model: run {r['run']} on {r['dataset']}, {r['rows']} rows (train {r['train']} of "
            f"{r['train_in_dataset']}, val {r['val']}, test {r['test']}); class columns {r['columns']}")
        if r["softmaxed"]:
            out("  the file held logits (values outside 0-1): softmaxed row by row")
        out(f"  embeddings: {r['embeddings']} dimensions" if r["embeddings"] else "  embeddings: none (Datalab's "
            "neighbour checks need them; cleanlab's label quality does not)")
        if r["test_accuracy"] is not None:
            out(f"  accuracy on the {r['test']} test images it predicted: {r['test_accuracy']:.4f}")
        out("  declared out-of-sample" if r["out_of_sample"] else "  declared in-sample (see the warning)")
        out("  feeds the queue from the next scoring (score_ambiguity)" if r["feeds_queue"] else
            f"  to feed the queue with it: review_settings {r['dataset']} --queue-model {r['run']}, then "
            f"score_ambiguity")
