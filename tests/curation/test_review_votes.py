"""Several reviewers per image (Dataset.reviews_required = K): votes, unanimous decisions applied, disagreements to
the curators' disputes page, undo of votes, and Fleiss' kappa."""
import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from curation.models import Image, LabelChange, ReviewVote
from curation.review.agreement import dataset_agreement, fleiss_kappa
from curation.review.services import (
    NothingToUndo,
    image_claim_next,
    image_decide,
    review_undo,
)
from curation.review.votes import VoteRefused
from curation.roles import CURATORS_GROUP
from curation.services import VersionConflict
from tests.factories import DatasetFactory, ImageFactory, UserFactory


@pytest.fixture
def k2(db):
    return DatasetFactory(name="double", reviews_required=2)


@pytest.fixture
def people(db):
    return [UserFactory(username=name) for name in ("ann", "ben", "cat")]


def _vote(user, image, decision, label=None):
    image.refresh_from_db()
    return image_decide(user=user, image_id=image.pk, action=decision, version=image.version, label=label)


def test_unanimous_votes_apply_once_and_each_reviewer_sees_the_image_once(k2, people):
    ann, ben, cat = people
    image = ImageFactory(dataset=k2, label=1, original_label=1, suspicion=0.9)
    assert image_claim_next(user=ann, dataset=k2).pk == image.pk
    assert image_claim_next(user=ben, dataset=k2) is None  # ann holds the lease
    first = _vote(ann, image, "relabel", 2)
    assert (first.outcome, first.change, first.vote.user) == ("pending", None, ann)
    image.refresh_from_db()
    assert (image.status, image.label, image.version, image.claimed_by) == ("unreviewed", 1, 1, None)
    assert image_claim_next(user=ann, dataset=k2) is None  # never shown twice to the same reviewer
    assert image_claim_next(user=ben, dataset=k2).pk == image.pk
    second = _vote(ben, image, "relabel", 2)
    assert second.outcome == "applied"
    image.refresh_from_db()
    assert (image.status, image.label, image.version, image.reviewed_by) == ("relabelled", 2, 2, ben)
    [change] = LabelChange.objects.filter(image=image)
    assert (change.action, change.new_label, change.user, change.note) == ("relabel", 2, ben,
                                                                          "unanimous vote of 2: ann, ben")
    assert ReviewVote.objects.filter(image=image).count() == 2
    assert image_claim_next(user=cat, dataset=k2) is None
    with pytest.raises(VersionConflict):  # cat's stale card
        image_decide(user=cat, image_id=image.pk, action="confirm", version=1)


def test_a_confirm_and_a_relabel_to_the_same_label_agree(k2, people):
    ann, ben, _ = people
    image = ImageFactory(dataset=k2, label=3, original_label=3)
    _vote(ann, image, "confirm")
    assert _vote(ben, image, "relabel", 3).outcome == "applied"
    image.refresh_from_db()
    assert (image.status, LabelChange.objects.get(image=image).action) == ("confirmed", "confirm")


def test_disagreement_goes_to_the_disputes_page_where_a_curator_resolves_it(client, k2, people):
    ann, ben, cat = people
    image = ImageFactory(dataset=k2, label=1, original_label=1, path="happy/7.png")
    _vote(ann, image, "confirm")
    assert _vote(ben, image, "exclude").outcome == "disputed"
    image.refresh_from_db()
    assert (image.disputed, image.status, image.version) == (True, "unreviewed", 1)
    assert not LabelChange.objects.exists()
    assert image_claim_next(user=cat, dataset=k2) is None  # out of the queue
    with pytest.raises(VoteRefused, match="awaits a curator"):
        image_decide(user=cat, image_id=image.pk, action="confirm", version=1)

    client.force_login(cat)
    page = client.get(reverse("review_disputes"), {"dataset": "double"}).content.decode()
    assert "happy/7.png" in page and "ann: happy" in page and "ben: exclude" in page
    assert "A curator resolves this." in page
    assert client.post(reverse("review_dispute_resolve"), {"image_id": image.pk, "version": 1,
                                                          "decision": "exclude", "dataset": "double"}).status_code == 403
    cat.groups.add(Group.objects.get_or_create(name=CURATORS_GROUP)[0])
    response = client.post(reverse("review_dispute_resolve"), {"image_id": image.pk, "version": 1,
                                                              "decision": "relabel:0", "dataset": "double"},
                           follow=True)
    assert "Dispute on image" in response.content.decode() and "No disputed image in double" in response.content.decode()
    image.refresh_from_db()
    assert (image.disputed, image.status, image.label, image.reviewed_by) == (False, "relabelled", 0, cat)
    [change] = LabelChange.objects.filter(image=image)
    assert (change.user, change.note) == (cat, "dispute resolved by a curator")
    again = client.post(reverse("review_dispute_resolve"), {"image_id": image.pk, "version": 2,
                                                           "decision": "exclude", "dataset": "double"}, follow=True)
    assert "is not disputed" in again.content.decode()


def test_undo_withdraws_an_open_vote_and_closed_rounds_are_final(k2, people):
    ann, ben, cat = people
    image = ImageFactory(dataset=k2, suspicion=0.9)
    other = ImageFactory(dataset=k2, suspicion=0.1)
    _vote(ann, image, "exclude")
    undo = review_undo(user=ann)
    assert undo.change is None and undo.undone.image_id == image.pk
    vote = ReviewVote.objects.get(image=image)
    assert vote.withdrawn_at is not None  # kept, as audit
    assert Image.objects.get(pk=image.pk).claimed_by == ann  # back to her
    with pytest.raises(NothingToUndo):
        review_undo(user=ann)
    _vote(ann, image, "confirm")
    _vote(ben, image, "confirm")  # round closed: applied, credited to ben
    with pytest.raises(NothingToUndo):
        review_undo(user=ann)  # her vote is final
    review_undo(user=ben)  # ben takes the applied decision back: a fresh round
    image.refresh_from_db()
    assert (image.status, image.version) == ("unreviewed", 3)
    assert image.claimed_by == ben  # as after any undo back to unreviewed
    assert _vote(ben, image, "exclude").outcome == "pending"
    assert image_claim_next(user=ann, dataset=k2).pk == image.pk  # she may vote in the new round
    assert [c.action for c in LabelChange.objects.filter(image=image).order_by("id")] == ["confirm", "undo"]
    _vote(cat, other, "confirm")
    with pytest.raises(VoteRefused, match="already has your vote"):
        _vote(cat, other, "confirm")


def test_k1_datasets_keep_the_single_decision(people):
    ann, _, _ = people
    image = ImageFactory(dataset=DatasetFactory(name="single"))
    decision = image_decide(user=ann, image_id=image.pk, action="confirm", version=1)
    assert isinstance(decision.change, LabelChange) and decision.vote is None and not ReviewVote.objects.exists()


def test_fleiss_kappa_matches_the_published_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories: P = 0.378, Pe = 0.213, k = 0.210.
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    kappa, per_category, p_bar, p_e, shares = fleiss_kappa(counts)
    assert (round(p_bar, 3), round(p_e, 3), round(kappa, 3)) == (0.378, 0.213, 0.210)
    assert np.allclose(shares, [0.143, 0.200, 0.279, 0.150, 0.229], atol=1e-3)
    for j in range(5):  # a category's kappa is Fleiss' kappa of "this category or not"
        binary = np.stack([np.array(counts)[:, j], 14 - np.array(counts)[:, j]], 1)
        assert per_category[j] == pytest.approx(fleiss_kappa(binary)[0])
    with pytest.raises(ValueError):
        fleiss_kappa([[1, 1], [2, 1]])


def test_dataset_agreement_per_class(k2, people):
    ann, ben, _ = people
    outcomes = [("confirm", None, "confirm", None)] * 3 + [("exclude", None, "exclude", None)] * 2 + \
               [("confirm", None, "relabel", 2)]
    for a1, l1, a2, l2 in outcomes:
        image = ImageFactory(dataset=k2, label=1, original_label=1)
        _vote(ann, image, a1, l1)
        _vote(ben, image, a2, l2)
    pending = ImageFactory(dataset=k2)
    _vote(ann, pending, "confirm")  # one vote: not counted
    result = dataset_agreement(k2)
    assert (result["items"], result["unanimous"], result["disputed_open"]) == (6, 5, 1)
    assert result["per_class"]["excluded"]["kappa"] == pytest.approx(1.0)
    assert result["per_class"]["happy"]["votes"] == 7 and result["per_class"]["sad"]["votes"] == 1
    assert result["per_class"]["anger"]["kappa"] is None
    # By hand: p = (7/12, 1/12, 4/12); P = 5/6; Pe = 49/144 + 1/144 + 16/144 = 66/144.
    assert result["kappa"] == pytest.approx((5 / 6 - 66 / 144) / (1 - 66 / 144))
    assert dataset_agreement(DatasetFactory(name="one"))["kappa"] is None


def test_review_settings_command(k2, capsys):
    call_command("review_settings", "double", "--reviews-required", "3")
    k2.refresh_from_db()
    assert k2.reviews_required == 3 and "3 reviews per image" in capsys.readouterr().out
    with pytest.raises(CommandError, match="1-9"):
        call_command("review_settings", "double", "--reviews-required", "0")
    with pytest.raises(CommandError, match="dataset 'nope' does not exist"):
        call_command("review_settings", "nope")


def test_the_disputes_page_query_count_does_not_grow_with_disputes(client, people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ann, ben, cat = people
    client.force_login(cat)
    counts = []
    for n in (2, 20):
        ds = DatasetFactory(name=f"disputes{n}", reviews_required=2)
        for _ in range(n):
            image = ImageFactory(dataset=ds)
            _vote(ann, image, "confirm")
            _vote(ben, image, "exclude")
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(reverse("review_disputes"), {"dataset": ds.name}).content.decode()
        assert page.count('class="dispute"') == n
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_disputes_stay_out_of_the_queue_when_the_dataset_goes_back_to_one_review(k2, people):
    ann, ben, cat = people
    disputed = ImageFactory(dataset=k2, suspicion=0.9)
    plain = ImageFactory(dataset=k2, suspicion=0.1)
    _vote(ann, disputed, "confirm")
    _vote(ben, disputed, "exclude")
    call_command("review_settings", "double", "--reviews-required", "1")
    k2.refresh_from_db()
    from curation.review.selectors import review_grid_page
    assert [image.pk for image in review_grid_page(user=cat, dataset=k2)[0]] == [plain.pk]
    assert image_claim_next(user=cat, dataset=k2).pk == plain.pk
    assert _vote(cat, plain, "confirm").vote is None  # a plain decision again
    assert image_claim_next(user=cat, dataset=k2) is None
