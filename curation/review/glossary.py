"""Plain words for every figure on the review card: a name a reviewer understands and one line saying what it means.
The card shows the line on hover (its title attribute) and the `?` dialog lists them all, so the two never differ."""

FIGURES = {
    "progress": ("Progress",
                 "Images of this dataset decided under the current filter, flagged ones among them, and your own "
                 "decisions and median seconds per decision."),
    "label": ("Label",
              "The label the image has now; the original is the one it was imported with."),
    "status": ("Status",
               "unreviewed, confirmed, relabelled or excluded: where the image stands after the reviews so far."),
    "version": ("Version",
                "Goes up with every decision on the image; a decision made on an older version is refused, so "
                "nobody overwrites a change they did not see."),
    "suspicion": ("How suspicious",
                  "All the checks below combined into one score; the queue shows the most suspicious images first. "
                  "A ranking, not a probability: only the order matters."),
    "classifier_confidence": ("Classifier's trust in the label",
                              "0 to 1: 0.5 means the classifier rates the label and its best other class equally; "
                              "below 0.5 it prefers another class, near 0 it is sure the label is wrong."),
    "label_issue": ("Likely wrong label",
                    "The classifier, trained without this image, found its label unlikely compared with how often "
                    "such mix-ups happen in this dataset."),
    "suggestion": ("Classifier suggests",
                   "The class the classifier finds most likely for this face; press a to accept it."),
    "probabilities": ("Classifier's top guesses",
                      "Probabilities from a classifier that never trained on this image (out-of-fold, or the test "
                      "split), highest first."),
    "resemblance": ("Resembles another emotion",
                    "How much more this face survives being redrawn as another emotion than typical faces of its "
                    "label do, in standard deviations: 0 is typical, 2 or more is unusual."),
    "lookalike": ("Look-alike score",
                  "How little the face changes when a CycleGAN redraws it as another emotion (SSIM, 0 to 1; 1 = "
                  "unchanged): near 1, the face may already show that emotion."),
    "flagged": ("Flagged as ambiguous",
                "yes when the look-alike score reaches this dataset's threshold for the label."),
    "transformations": ("How CycleGANs redraw this face",
                        "Each row: a generator that turns this label into another emotion, the look-alike score of "
                        "its output, the same score from the generator that should leave the face alone (its "
                        "baseline), and how unusual the difference is."),
    "generator": ("Redrawn by",
                  "The CycleGAN (its number), which of its two generators (G_A turns its first emotion into its "
                  "second, G_B the second into the first), and the training epoch of the snapshot used."),
    "redrawn": ("Redrawn face",
                "The face as that generator redrew it, where a generate job made it; \"not generated\" otherwise."),
    "baseline": ("Baseline",
                 "The look-alike score under the pair's other generator, which should leave this face unchanged: "
                 "how much any redrawing changes this particular face."),
    "references": ("Reference faces",
                   "The faces of the current and the suggested label the classifier finds most typical (confirmed "
                   "or unreviewed train images), to compare like with like."),
    "guidelines": ("Guidelines",
                   "What the curators of this dataset ask reviewers to look for in a class."),
    "history": ("History",
                "Every decision on this image, oldest first, undos included."),
}


def figures():
    """{key: {"name", "help"}} for templates, in the order of FIGURES."""
    return {key: {"name": name, "help": text} for key, (name, text) in FIGURES.items()}
