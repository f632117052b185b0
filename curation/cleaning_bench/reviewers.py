"""Simulated reviewers and the clean-label oracle, both acting through the product's own services as users.

A simulated reviewer takes the queue as a person does (curation.review.services.image_claim_next: most suspicious
first, under a lease) and decides each image from truth.csv: with probability 1 - error the right decision
(confirm a right label, relabel a wrong one to the true class), otherwise the wrong one (confirm a wrong label,
or relabel a right one to its confusable partner: the mistake a hurried annotator makes). Every decision goes
through image_decide, so each is an audited LabelChange, and the audit is checked against the decisions made.

The review ceiling is the same reviewers on a perfect queue: the wrong labels first (in suspicion order), so every
decision of the budget lands on a wrong label while any is left. What its retrain recovers is the most a review of
that budget and error rate can buy on these faces; its decisions are then taken back (audited undos), so the
product's own queue is reviewed from the same start.

Where the truth covers only some images (bench_cleaning --faces with a partial truth.csv), a simulated reviewer
skips an image it has no truth for (a ReviewSkip through image_decide: no label changes, no budget spent), the
perfect queue puts those images last, and the oracle leaves their labels as given.
"""
import csv
from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model

from curation.models import Image, LabelChange
from curation.review.services import image_claim_next, image_decide
from curation.services import image_label_change
from training.labels import CLASSES, CODE
from training.synthetic_faces import PARTNER


@dataclass(frozen=True)
class Truth:
    label: int  # the true class code
    noisy: bool  # the imported label is wrong


def read_truth(path):
    """{dataset path: Truth} from make_synthetic_faces' truth.csv."""
    with open(path, newline="") as fh:
        return {row["path"]: Truth(CODE[row["true_label"]], row["noisy"] in ("1", "true", "True"))
                for row in csv.DictReader(fh)}


def bench_users(prefix, count):
    User = get_user_model()
    return [User.objects.get_or_create(username=f"{prefix}-{k + 1}")[0] for k in range(count)]


def perfect_queue(dataset, truth):
    """The train split's image ids with the wrong labels first, each part in the queue's order (most suspicious
    first, ties by id): the queue a review ceiling takes."""
    rows = Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN).values_list("pk", "path", "suspicion")
    order = sorted(rows, key=lambda r: (r[1] not in truth, not (r[1] in truth and truth[r[1]].noisy), r[2] is None,
                                        -(r[2] or 0.0), r[0]))
    return [pk for pk, _, _ in order]


def simulate_review(*, dataset, truth, budget, error_rate, seed, users, queue=None, offset=0, skipped=None):
    """Up to `budget` decisions on the train split, the users taking turns; returns one dict a decision.

    queue None: the product's review queue (image_claim_next, what a reviewer is shown). queue a list of image
    ids: those, in that order (the review ceiling's perfect queue). Either way, the same decisions from truth.csv
    with the same error draws (one seed) go through image_decide. offset: decisions made before this call (review
    rounds): the draws and the reviewers' turns go on from there, so rounds draw what one pass would."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10]))
    if offset:
        rng.random(offset)
    decisions = []
    ids = iter(queue) if queue is not None else None
    while len(decisions) < budget:
        user = users[(offset + len(decisions)) % len(users)]
        if ids is None:
            # The train split's queue; with the dataset's audit on, the default queue (the audit serves only there),
            # whose ordinary cards are the train split's too: only train images are scored.
            image = image_claim_next(user=user, dataset=dataset,
                                     filters={} if dataset.audit_share else {"split": Image.Split.TRAIN})
        else:
            pk = next(ids, None)
            image = None if pk is None else Image.objects.get(pk=pk)
        if image is None:
            break
        if image.path not in truth:  # nothing to decide it by: passed over, as a reviewer skips a card
            image_decide(user=user, image_id=image.pk, action="skip", version=image.version)
            if skipped is not None:
                skipped.append(image.pk)
            continue
        true = truth[image.path]
        wrong = bool(rng.random() < error_rate)
        right_label = image.label == true.label
        if right_label != wrong:  # a right label confirmed, or a wrong one confirmed by mistake
            action, label = "confirm", None
        elif wrong:  # a right label "corrected" to the class it is most often confused with
            action, label = "relabel", CODE[PARTNER[CLASSES[true.label]]]
        else:
            action, label = "relabel", true.label
        change = image_decide(user=user, image_id=image.pk, action=action, version=image.version, label=label).change
        decisions.append({
            "rank": offset + len(decisions) + 1, "image": image.pk, "path": image.path, "user": user.username,
            "suspicion": image.suspicion, "label_before": CLASSES[image.label], "true_label": CLASSES[true.label],
            "noisy": true.noisy, "action": action, "label_after": CLASSES[change.new_label],
            "reviewer_wrong": wrong, "change": change.pk, "audit": image.audit, "split": image.split,
        })
    return decisions


def undo_decisions(decisions):
    """Take back `decisions` (newest first), each through the label service as its reviewer's audited undo, so
    that every image is back to the label and status it had before; returns the check of that."""
    changes = LabelChange.objects.in_bulk([d["change"] for d in decisions])
    for d in reversed(decisions):
        change = changes[d["change"]]
        version = Image.objects.values_list("version", flat=True).get(pk=d["image"])
        image_label_change(image_id=d["image"], action=LabelChange.Action.UNDO, expected_version=version,
                           user=change.user, undo_of=change, note="bench_cleaning: review ceiling taken back")
    before = {c.image_id: (c.old_label, c.old_status) for c in changes.values()}
    now = {pk: (label, status) for pk, label, status in
           Image.objects.filter(pk__in=before).values_list("pk", "label", "status")}
    restored = [pk for pk, state in before.items() if now.get(pk) == state]
    return {"undone": len(decisions), "restored": len(restored), "ok": len(restored) == len(before)}


def audit_decisions(decisions, users, dataset):
    """Do the audit rows say exactly what the simulated reviewers decided? One LabelChange per decision, with its
    image, reviewer, action and new label, and no other change by them."""
    rows = {c.pk: c for c in LabelChange.objects.filter(user__in=users, image__dataset=dataset).select_related("user")}
    mismatched = [d["rank"] for d in decisions if d["change"] not in rows or (
        rows[d["change"]].image_id, rows[d["change"]].user.username, rows[d["change"]].action,
        CLASSES[rows[d["change"]].new_label]) != (d["image"], d["user"], d["action"], d["label_after"])]
    return {"decisions": len(decisions), "label_changes": len(rows), "mismatched": mismatched,
            "ok": not mismatched and len(rows) == len(decisions)}


def oracle_relabel(*, dataset, truth, user):
    """Give every train image its true label through the label service, so that a reduced retrain trains on the
    clean labels of the whole train split: wrong or excluded images are relabelled, and flagged images nobody
    reviewed are confirmed (a reduced run would drop them). Val and test are untouched, as for every run.
    Returns counts."""
    relabelled = confirmed = unknown = 0
    for image in Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN).order_by("id"):
        if image.path not in truth:  # a partial truth: its label stays as given
            unknown += 1
            continue
        true = truth[image.path].label
        if image.label != true or image.status == Image.Status.EXCLUDED:
            image_label_change(image_id=image.pk, action="relabel", label=true, expected_version=image.version,
                               user=user, note="bench_cleaning oracle: true label")
            relabelled += 1
        elif image.flagged and image.status == Image.Status.UNREVIEWED:
            image_label_change(image_id=image.pk, action="confirm", expected_version=image.version, user=user,
                               note="bench_cleaning oracle: true label")
            confirmed += 1
    return {"relabelled": relabelled, "confirmed": confirmed, "left_as_given": unknown}
