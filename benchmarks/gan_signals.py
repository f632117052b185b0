"""GAN-derived scores beyond SSIM on a dataset whose truth is known (issue #18, item 6): per generator direction and
over all images, the AUROC of each score for the wrong labels, and what each adds to cleanlab's margin
(curation/cleaning_bench/gan_signals.py says what the scores are).

It reads a dataset that a benchmark or the demo left behind: its baseline run (with out-of-fold probabilities), its
latest CycleGANs and the truth file the synthetic faces were written with. bench_cleaning measures the same in its
report; this reruns it on a database that exists, e.g. an earlier benchmark's:

    FER_DATA_DIR=DIR python -m benchmarks.gan_signals --dataset bench-... --truth OUT/faces/truth.csv
"""
import argparse
import json

from benchmarks._django import setup

setup()

from curation.cleaning_bench.gan_signals import markdown_table, measure_gan_signals  # noqa: E402
from curation.cleaning_bench.reviewers import read_truth  # noqa: E402
from curation.selectors import dataset_get  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--truth", required=True, help="truth.csv of the synthetic faces (path, true_label, noisy)")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    truth = read_truth(args.truth)
    result = measure_gan_signals(dataset_get(name=args.dataset), {p: t.noisy for p, t in truth.items()}, say=print)
    print(markdown_table(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
