"""Write a procedural facial-expression dataset with known label noise (see training/synthetic_faces.py)."""
from django.core.management.base import BaseCommand, CommandError

from training.synthetic_faces import (
    ANNOTATORS,
    DEFAULT_DIFFICULTY,
    DUPLICATE_KINDS,
    NOISE_MODELS,
    make_synthetic_faces,
)


class Command(BaseCommand):
    help = ("Write OUT/images/*.png, OUT/labels.csv (path,label,split; noisy) and OUT/truth.csv "
            "(path,true_label,intensity,noisy,duplicate_group,outlier,duplicate_kind): synthetic faces whose wrong labels, "
            "near-duplicates and non-faces are known.")

    def add_arguments(self, parser):
        parser.add_argument("out", help="folder to write into (created if missing)")
        parser.add_argument("--n", type=int, required=True, help="number of faces")
        parser.add_argument("--size", type=int, default=64, help="image side in pixels")
        parser.add_argument("--noise", type=float, default=0.2, help="share of wrong labels in train + val")
        parser.add_argument("--noise-model", default="uniform",
                            help=f"how the wrong labels are chosen: {' or '.join(NOISE_MODELS)} (uniform: at random, "
                                 "mostly the confusable class; annotators: simulated annotators who read each face's "
                                 "expression and err on the faces that are hard to read)")
        parser.add_argument("--annotators", type=int, default=ANNOTATORS,
                            help="annotators a face under --noise-model annotators; the label is their plurality")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY,
                            help="0-1: intensity, blends, identity and capture variation")
        parser.add_argument("--preview", action="store_true", help="also write OUT/preview.png (8 emotions x 12)")
        parser.add_argument("--workers", type=int, default=1, help="processes; the files are the same for any number")
        parser.add_argument("--duplicates", type=float, default=0.0,
                            help="share of images that are near-duplicates of another face (any split; truth.csv "
                                 "duplicate_group says which)")
        parser.add_argument("--duplicate-kinds", default=",".join(DUPLICATE_KINDS),
                            help="comma-separated ways the copies are made, each copy one of them at random "
                                 f"(default: all of {', '.join(DUPLICATE_KINDS)}; truth.csv duplicate_kind)")
        parser.add_argument("--nonfaces", type=float, default=0.0,
                            help="share of images that are not faces (noise, scenery, blank frames; truth.csv outlier 1)")

    def handle(self, *args, **options):
        try:
            summary = make_synthetic_faces(
                options["out"], n=options["n"], size=options["size"], noise=options["noise"], seed=options["seed"],
                difficulty=options["difficulty"], preview=options["preview"], workers=options["workers"],
                duplicates=options["duplicates"], nonfaces=options["nonfaces"], noise_model=options["noise_model"],
                annotators=options["annotators"],
                duplicate_kinds=[kind.strip() for kind in options["duplicate_kinds"].split(",") if kind.strip()],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        out = self.stdout.write
        out(f"wrote {summary['n']} faces ({summary['size']} px) to {summary['out']} in {summary['seconds']:.1f} s "
            f"({summary['faces_per_second']:.0f} faces/s)")
        out("  per class:  " + ", ".join(f"{c} {k}" for c, k in summary["per_class"].items()))
        out("  per split:  " + ", ".join(f"{s} {k}" for s, k in summary["per_split"].items()))
        out(f"  wrong labels: {summary['noisy']} ({summary['noise_rate']:.1%} of train + val; "
            f"{summary['noisy_to_partner']:.0%} to the confusable class); the test split has none")
        if summary["noise_model"] == "annotators":
            pair = summary["two_annotator_agreement"]
            out(f"  annotators: {summary['annotators']} a face (perception noise {summary['perception_sigma']:.3f}); "
                f"one annotator right on {summary['one_annotator_accuracy']:.0%} of the faces"
                + ("" if pair is None else f", two annotators agree on {pair:.0%}")
                + f", neutral misread {summary['neutral_error']:.0%} of the time; by intensity: "
                + ", ".join(f"{band} {v['error']:.0%}" for band, v in summary["error_by_intensity"].items()))
        out(f"  mean intensity (non-neutral): {summary['mean_intensity']:.2f}   difficulty {summary['difficulty']}")
        if summary["duplicates"] or summary["nonfaces"]:
            out(f"  near-duplicates: {summary['duplicates']} copies in {summary['duplicate_groups']} groups "
                f"({summary['cross_split_duplicates']} in another split than their original, {summary['test_leaks']} "
                f"across the test split); non-faces: {summary['nonfaces']}")
            if summary["duplicates"]:
                out("  copies made by: " + ", ".join(f"{kind} {count}" for kind, count in summary["duplicate_kinds"].items()))
        out(f"  labels: {summary['out']}/labels.csv   truth: {summary['out']}/truth.csv")
        if options["preview"]:
            out(f"  preview: {summary['out']}/preview.png")
