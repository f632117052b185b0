"""A small dataset whose health report is known to the image: dataset "hd", built straight into the tables.

Train, unreviewed (29): 5 happy flagged by cleanlab with sad suggested, 2 neutral flagged with surprise suggested
(7 unreviewed label issues); 3 with Datalab's neighbours disagreeing; 4 Datalab outliers; 2 in a Datalab
near-duplicate set; 10 plain; B and C (a find_duplicates group of two); A (train, in a group with the test image T).
Decided by rita (11): 3 happy relabelled to sad (one of them flagged by cleanlab), 4 neutral confirmed (one flagged),
2 anger excluded, 1 fear relabelled to surprise, 1 disgust confirmed as anger after an earlier relabel. Test (3): T
(leaks through A), 2 plain. Every train image is scored (label quality 0.9, or 0.1 where flagged)."""
from curation.models import DuplicateMember, Image, Job
from tests.factories import DatasetFactory, ImageFactory, JobFactory, UserFactory

NEUTRAL, HAPPY, SAD, SURPRISE, FEAR, DISGUST, ANGER = 0, 1, 2, 3, 4, 5, 6
U, C, R, X = (Image.Status.UNREVIEWED, Image.Status.CONFIRMED, Image.Status.RELABELLED, Image.Status.EXCLUDED)

# What the report must say of it.
EXPECTED = {
    "images": 43,
    "issues": {  # key: (all, unreviewed)
        "label_issues": (9, 7), "neighbour_issues": (3, 3), "outliers": (4, 4), "near_duplicates": (4, 4),
        "datalab_near_duplicates": (2, 2), "test_leaks": (1, 1),
    },
    "cleaning": {"unreviewed": 32, "confirmed": 5, "relabelled": 4, "excluded": 2},
    "reviewed": {("happy", "sad"): 3, ("neutral", "neutral"): 4, ("anger", "excluded"): 2,
                 ("fear", "surprise"): 1},
    "suggested": {("happy", "sad"): 5, ("neutral", "surprise"): 2},
    "classes": {"happy": (12, 9), "anger": (5, 4)},  # (before, after)
    "cleanlab": (9, 40),  # flagged of the scored train images
}


def _img(ds, name, *, label, original=None, status=U, split="train", scored=True, **kw):
    original = label if original is None else original
    if split == "train" and scored:
        kw.setdefault("label_quality", 0.1 if kw.get("classifier_flagged") else 0.9)
        kw.setdefault("suspicion", 0.9 if kw.get("classifier_flagged") else 0.2)
    return ImageFactory(dataset=ds, path=f"{name}.png", label=label, original_label=original, status=status,
                        split=split, **kw)


def health_dataset(name="hd"):
    ds = DatasetFactory(name=name)
    rita = UserFactory(username="rita")
    for k in range(5):
        _img(ds, f"issue-happy-{k}", label=HAPPY, classifier_flagged=True, classifier_suggested_label=SAD)
    for k in range(2):
        _img(ds, f"issue-neutral-{k}", label=NEUTRAL, classifier_flagged=True, classifier_suggested_label=SURPRISE)
    for k in range(3):
        _img(ds, f"neighbours-{k}", label=SAD, datalab_label_issue=True, classifier_suggested_label=SAD)
    for k in range(4):
        _img(ds, f"outlier-{k}", label=FEAR, datalab_outlier=True)
    for k in range(2):
        _img(ds, f"dl-dup-{k}", label=ANGER, datalab_near_duplicates=[1, 2])
    for k in range(10):
        _img(ds, f"plain-{k}", label=k % 8)
    b = _img(ds, "dup-b", label=SAD)
    c = _img(ds, "dup-c", label=SAD)
    a = _img(ds, "leak-a", label=HAPPY)
    t = _img(ds, "leak-t", label=HAPPY, split="test")
    for k in range(2):
        _img(ds, f"test-{k}", label=NEUTRAL, split="test")
    decided = dict(reviewed_by=rita)
    for k in range(3):
        _img(ds, f"relabelled-{k}", label=SAD, original=HAPPY, status=R, classifier_flagged=k == 0,
             classifier_suggested_label=SAD, **decided)
    for k in range(4):
        _img(ds, f"confirmed-{k}", label=NEUTRAL, status=C, classifier_flagged=k == 0, **decided)
    for k in range(2):
        _img(ds, f"excluded-{k}", label=ANGER, status=X, **decided)
    _img(ds, "fear-surprise", label=SURPRISE, original=FEAR, status=R, **decided)
    _img(ds, "disgust-anger", label=ANGER, original=DISGUST, status=C, **decided)
    for members in ((a, t), (b, c)):
        for m in members:
            DuplicateMember.objects.create(dataset=ds, image=m, group=min(x.pk for x in members), distance=1,
                                           linked_by="phash+colour")
    JobFactory(kind="score_ambiguity", params={"dataset": name}, status=Job.Status.SUCCEEDED,
               result={"dataset": name})
    JobFactory(kind="find_duplicates", params={"dataset": name}, status=Job.Status.SUCCEEDED, result={})
    return ds
