"""Issue #38 item 5: once the random audit holds enough decisions, the queue's order is chosen on them, by which
signal finds this dataset's wrong labels, and the dataset page says which and why.

The dataset is built so that the two signals disagree: a user's model whose probabilities know nothing of the wrong
labels (cleanlab's margin is chance), and embeddings in which each wrong label sits among the images of the class
it really is (Datalab's neighbour score finds it). The default order leads with the margin; the audit must see
that the neighbours work here."""
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import Dataset, Image, Job
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.usefixtures("inline_jobs")

TRAIN, WRONG_SHARE = 400, 0.25


def _dataset(tmp_path, *, audited, seed=0):
    """Dataset "aud" with TRAIN train images, a quarter of them wrong; the first `audited` train images (in a random
    order) are the audit's sample, all decided: wrong labels relabelled, the rest confirmed. The user's model is
    imported with its predictions and embeddings and feeds the queue; nothing else is reviewed."""
    rng = np.random.default_rng(seed)
    ds = DatasetFactory(name="aud", audit_share=0.05)
    wrong = rng.random(TRAIN) < WRONG_SHARE
    given = np.arange(TRAIN) % 8
    true = np.where(wrong, (given + 1 + rng.integers(0, 7, TRAIN)) % 8, given)
    sample = set(rng.permutation(TRAIN)[:audited].tolist())
    for i in range(TRAIN):
        decided = i in sample
        status = (Image.Status.RELABELLED if wrong[i] else Image.Status.CONFIRMED) if decided else \
            Image.Status.UNREVIEWED
        ImageFactory(dataset=ds, path=f"a{i}.png", original_label=int(given[i]),
                     label=int(true[i]) if decided else int(given[i]), status=status, audit=decided,
                     # The sample is every image of a label up to the audit's reach: audited keys lie below the rest.
                     audit_key=rng.uniform(0, 0.5) if decided else rng.uniform(0.5, 1))
    for i in range(4):
        ImageFactory(dataset=ds, path=f"t{i}.png", split=Image.Split.TEST, audit_key=0.9)
    probs = rng.dirichlet(np.ones(8), TRAIN)  # knows nothing of which labels are wrong
    centres = np.eye(8) * 4
    embeddings = (centres[true] + rng.normal(0, 1, (TRAIN, 8))).astype(np.float32)  # near the class it really is
    lines = ["path,p0,p1,p2,p3,p4,p5,p6,p7"] + [",".join([f"a{i}.png", *(repr(float(v)) for v in probs[i])])
                                               for i in range(TRAIN)]
    (tmp_path / "preds.csv").write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "emb.npy", embeddings)
    call_command("import_predictions", str(tmp_path / "preds.csv"), "--dataset", "aud", "--embeddings",
                 str(tmp_path / "emb.npy"), "--out-of-sample", "--feed-queue", "--inline", stdout=io.StringIO(),
                 stderr=io.StringIO())
    call_command("score_ambiguity", "--dataset", "aud", "--inline", stdout=io.StringIO(), stderr=io.StringIO())
    return Dataset.objects.get(name="aud"), wrong, sample


def _fusion():
    return Job.objects.filter(kind="score_ambiguity").latest("id").result["fusion"]


@pytest.mark.django_db
def test_with_enough_audit_decisions_the_queue_follows_the_signal_that_works_on_this_dataset(tmp_path, as_reviewer):
    ds, wrong, sample = _dataset(tmp_path, audited=200)
    fusion = _fusion()
    assert fusion["source"] == "audit" and fusion["reviewed"] == 200
    assert fusion["changed"] == sum(wrong[i] for i in sample)
    assert fusion["used"] == "datalab", fusion
    assert fusion["auroc"]["datalab"] > 0.8 > 0.65 > fusion["auroc"]["classifier"]
    low, high = fusion["interval"]["datalab"]
    assert low < fusion["auroc"]["datalab"] < high
    # The queue's order is the neighbour score: its unreviewed top holds the wrong labels the default misses.
    unreviewed = list(Image.objects.filter(dataset=ds, split=Image.Split.TRAIN, status=Image.Status.UNREVIEWED)
                      .order_by("-suspicion").values_list("path", flat=True))
    top = [int(p[1:-4]) for p in unreviewed[:len(unreviewed) // 5]]
    assert np.mean(wrong[top]) > 0.7  # base rate 0.25
    page = as_reviewer.get(reverse("dataset", args=["aud"])).content.decode()
    assert "chosen on the random audit&#x27;s 200 decisions" in page and "the datalab signal alone" in page


@pytest.mark.django_db
def test_a_thin_audit_leaves_the_order_to_the_default_and_says_what_it_holds(tmp_path, as_reviewer):
    # 30 decisions: under the 20 wrong labels the audit needs, and under the 40 the queue's own rule needs.
    ds, wrong, sample = _dataset(tmp_path, audited=30)
    fusion = _fusion()
    held = sum(wrong[i] for i in sample)
    assert held < 20 and fusion.get("source") != "audit" and fusion["used"] == "default"
    assert fusion["audit_decisions"] == 30 and fusion["audit_wrong"] == held
    page = as_reviewer.get(reverse("dataset", args=["aud"])).content.decode()
    assert (f"the random audit chooses instead once its sample holds 20 wrong labels and 20 confirmed ones "
            f"({held} and {30 - held} now)") in page
