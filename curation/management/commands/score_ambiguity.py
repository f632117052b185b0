from curation.management.jobcommand import JobCommand


class Command(JobCommand):
    help = ("Score a dataset's train images: SSIM against every trained generator leaving their label, cleanlab "
            "signals from the latest out-of-fold probabilities, SSIM flags, and the suspicion that orders the queue.")
    job_kind = "score_ambiguity"

    def add_job_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (may be left out where only one exists)")
        parser.add_argument("--threshold", type=float, default=0.85, help="SSIM at or above which an image is flagged")
        parser.add_argument("--class-threshold", action="append", default=[], metavar="LABEL=T",
                            help="a threshold for one class, e.g. --class-threshold happy=0.9 (repeatable)")
        parser.add_argument("--chunk-images", type=int, default=None, metavar="N",
                            help="images per chunk job that GPU workers share (default: FER_SCORE_CHUNK_IMAGES, 4096)")

    def job_params(self, options):
        per_class = {}
        for item in options["class_threshold"]:
            name, _, value = item.partition("=")
            per_class[name] = value
        return {"dataset": options["dataset"], "threshold": options["threshold"], "class_thresholds": per_class,
                "chunk_images": options["chunk_images"]}

    def report(self, job):
        r = job.result
        if not r:
            return
        out = self.stdout.write
        out(f"scored {r['scored']} train images of {r['dataset']} with generators {', '.join(r['generators']) or 'none'}"
            f" ({r['ssim_computed']} new SSIMs) and classifier run {r['classifier_run'] or 'none'}")
        out(f"  SSIM-flagged: {r['flagged']} (threshold {r['threshold']}); classifier-flagged: {r['classifier_flagged']}")
        for name, rate in sorted(r["flag_rate_per_class"].items()):
            out(f"    {name:<9} flag rate {rate:.1%}")
        f = r["fusion"]
        out(f"  suspicion: {f['used']}" + (f" ({f['why']})" if f.get("why") else ""))
        for name, auroc in f.get("auroc", {}).items():
            out(f"    AUROC on {f['reviewed']} reviewed images, {name}: {auroc:.3f}")
        checked = r.get("generators_working") or {}
        if checked:
            verdict = {True: "passed", False: "FAILED (ignored by the default suspicion)", None: "not checked"}
            out("  generators' quality check (outputs called the target class more often than their sources):")
            for name, works in checked.items():
                out(f"    {name:<20} {verdict[works]}")
