"""The review queue's services: leases, decisions, skips and undo, alone and with 20 reviewers at once."""
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from curation.models import Image, LabelChange, ReviewSkip
from curation.review.services import (
    ClaimLost,
    NothingToUndo,
    image_claim_next,
    image_decide,
    image_lease_extend,
    review_undo,
)
from curation.services import UndoConflict, VersionConflict
from tests.factories import DatasetFactory, ImageFactory, UserFactory


@pytest.fixture
def ds(db):
    return DatasetFactory(name="queue")


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


def _claimed_pks(user, ds, n, **filters):
    pks = []
    for _ in range(n):
        image = image_claim_next(user=user, dataset=ds, filters=filters)
        pks.append(image.pk if image else None)
        if image:
            image_decide(user=user, image_id=image.pk, action="confirm", version=image.version)
    return pks


def test_order_is_most_suspicious_first_unscored_last_then_by_id(ds, alice):
    unscored_a = ImageFactory(dataset=ds, suspicion=None)
    low = ImageFactory(dataset=ds, suspicion=0.1)
    high = ImageFactory(dataset=ds, suspicion=0.9)
    unscored_b = ImageFactory(dataset=ds, suspicion=None)
    tie = ImageFactory(dataset=ds, suspicion=0.1)
    ImageFactory(dataset=DatasetFactory(name="elsewhere"), suspicion=1.0)
    decided = ImageFactory(dataset=ds, suspicion=0.95, status=Image.Status.CONFIRMED)
    assert _claimed_pks(alice, ds, 6) == [high.pk, low.pk, tie.pk, unscored_a.pk, unscored_b.pk, None]
    assert Image.objects.get(pk=decided.pk).version == 1


def test_a_claim_is_a_lease_two_reviewers_never_share_and_own_claim_comes_back(ds, alice, bob, settings):
    settings.REVIEW_LEASE_SECONDS = 120
    first, second = ImageFactory(dataset=ds, suspicion=0.9), ImageFactory(dataset=ds, suspicion=0.5)
    before = timezone.now()
    mine = image_claim_next(user=alice, dataset=ds)
    assert mine.pk == first.pk and mine.claimed_by == alice
    assert before + timedelta(seconds=119) < mine.claim_expires_at <= timezone.now() + timedelta(seconds=120)
    assert image_claim_next(user=bob, dataset=ds).pk == second.pk
    assert image_claim_next(user=alice, dataset=ds).pk == first.pk  # still hers, lease renewed
    ImageFactory(dataset=ds, suspicion=0.1)
    assert Image.objects.filter(claimed_by=alice).count() == 1


def test_an_expired_claim_returns_to_the_queue(ds, alice, bob):
    image = ImageFactory(dataset=ds, suspicion=0.9)
    assert image_claim_next(user=alice, dataset=ds).pk == image.pk
    assert image_claim_next(user=bob, dataset=ds) is None
    Image.objects.filter(pk=image.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    assert image_claim_next(user=bob, dataset=ds).pk == image.pk
    with pytest.raises(ClaimLost):
        image_lease_extend(user=alice, image_id=image.pk)


def test_lease_extend_renews_the_holders_claim(ds, alice, settings):
    image = ImageFactory(dataset=ds)
    claimed = image_claim_next(user=alice, dataset=ds)
    settings.REVIEW_LEASE_SECONDS = 3600
    expires = image_lease_extend(user=alice, image_id=image.pk)
    assert expires > claimed.claim_expires_at + timedelta(minutes=50)
    assert Image.objects.get(pk=image.pk).claim_expires_at == expires


def test_a_changed_filter_releases_the_old_claim(ds, alice, bob):
    happy = ImageFactory(dataset=ds, label=1, original_label=1, suspicion=0.9)
    sad = ImageFactory(dataset=ds, label=2, original_label=2, suspicion=0.1)
    assert image_claim_next(user=alice, dataset=ds).pk == happy.pk
    assert image_claim_next(user=alice, dataset=ds, filters={"label": 2}).pk == sad.pk
    assert image_claim_next(user=bob, dataset=ds).pk == happy.pk  # alice let go of it


def test_filters(ds, alice):
    match = ImageFactory(dataset=ds, label=3, original_label=3, split="val", flagged=True, suspicion=0.6)
    ImageFactory(dataset=ds, label=3, original_label=3, split="val", flagged=True, suspicion=0.4)
    ImageFactory(dataset=ds, label=3, original_label=3, split="train", flagged=True, suspicion=0.9)
    ImageFactory(dataset=ds, label=3, original_label=3, split="val", flagged=False, suspicion=0.9)
    ImageFactory(dataset=ds, label=4, original_label=4, split="val", flagged=True, suspicion=0.9)
    filters = {"label": 3, "split": "val", "flagged": True, "min_suspicion": 0.5}
    assert _claimed_pks(alice, ds, 2, **filters) == [match.pk, None]


def test_a_second_pass_by_status_never_offers_your_own_decision(ds, alice, bob):
    image = ImageFactory(dataset=ds)
    image_decide(user=alice, image_id=image.pk, action="relabel", label=5, version=1)
    assert image_claim_next(user=alice, dataset=ds, filters={"status": "relabelled"}) is None
    assert image_claim_next(user=bob, dataset=ds, filters={"status": "relabelled"}).pk == image.pk


def test_decisions_record_who_when_how_long_and_release_the_claim(ds, alice):
    ImageFactory(dataset=ds, label=1, original_label=1)
    image = image_claim_next(user=alice, dataset=ds)
    decision = image_decide(user=alice, image_id=image.pk, action="relabel", label=2, version=1, seconds_spent=3.2)
    change = decision.change
    assert (decision.outcome, decision.vote, decision.skip) == ("applied", None, None)
    image.refresh_from_db()
    assert (image.label, image.status, image.version, image.reviewed_by) == (2, "relabelled", 2, alice)
    assert image.reviewed_at == change.created_at or abs(image.reviewed_at - change.created_at) < timedelta(seconds=1)
    assert (image.claimed_by, image.claim_expires_at) == (None, None)
    assert (change.action, change.old_label, change.new_label, change.seconds_spent) == ("relabel", 1, 2, 3.2)


def test_confirming_a_relabel_keeps_it_relabelled(ds, alice, bob):
    image = ImageFactory(dataset=ds, label=1, original_label=1)
    image_decide(user=alice, image_id=image.pk, action="relabel", label=2, version=1)
    image_decide(user=bob, image_id=image.pk, action="confirm", version=2)
    image.refresh_from_db()
    assert (image.label, image.status, image.reviewed_by) == (2, "relabelled", bob)


def test_a_stale_decision_raises_and_changes_nothing(ds, alice, bob):
    image = ImageFactory(dataset=ds)
    image_decide(user=alice, image_id=image.pk, action="exclude", version=1)
    with pytest.raises(VersionConflict, match="version 2, not 1"):
        image_decide(user=bob, image_id=image.pk, action="relabel", label=0, version=1)
    image.refresh_from_db()
    assert (image.status, image.reviewed_by, image.version) == ("excluded", alice, 2)
    assert LabelChange.objects.count() == 1


def test_skip_is_recorded_releases_and_the_image_goes_to_others(ds, alice, bob):
    hard, easy = ImageFactory(dataset=ds, suspicion=0.9), ImageFactory(dataset=ds, suspicion=0.1)
    assert image_claim_next(user=alice, dataset=ds).pk == hard.pk
    decision = image_decide(user=alice, image_id=hard.pk, action="skip", seconds_spent=7.0)
    skip = decision.skip
    assert (decision.outcome, decision.change) == ("skipped", None)
    assert isinstance(skip, ReviewSkip) and (skip.user, skip.image_id, skip.seconds_spent) == (alice, hard.pk, 7.0)
    assert Image.objects.get(pk=hard.pk).claimed_by is None and Image.objects.get(pk=hard.pk).version == 1
    assert image_claim_next(user=alice, dataset=ds).pk == easy.pk
    assert image_claim_next(user=bob, dataset=ds).pk == hard.pk
    assert not LabelChange.objects.exists()


def test_undo_restores_label_status_and_reviewer_and_is_recorded(ds, alice, bob):
    image = ImageFactory(dataset=ds, label=1, original_label=1)
    first = image_decide(user=bob, image_id=image.pk, action="confirm", version=1).change
    image_decide(user=alice, image_id=image.pk, action="relabel", label=6, version=2)
    undo, undone = review_undo(user=alice)
    image.refresh_from_db()
    assert (image.label, image.status, image.version) == (1, "confirmed", 4)
    assert (image.reviewed_by, image.reviewed_at) == (bob, first.created_at)  # bob's decision stands again
    assert (undone.action, undo.action, undo.user) == ("relabel", "undo", alice)
    assert (undo.old_label, undo.new_label, undo.old_status, undo.new_status) == (6, 1, "relabelled", "confirmed")
    assert image.claimed_by is None  # not back in the unreviewed queue, so nobody's claim
    with pytest.raises(NothingToUndo):
        review_undo(user=alice)


def test_repeated_undo_walks_back_and_the_undone_image_is_claimed_again(ds, alice):
    a, b = ImageFactory(dataset=ds, suspicion=0.9), ImageFactory(dataset=ds, suspicion=0.5)
    image_decide(user=alice, image_id=a.pk, action="exclude", version=1)
    image_decide(user=alice, image_id=b.pk, action="confirm", version=1)
    assert review_undo(user=alice).change.image_id == b.pk
    assert review_undo(user=alice).change.image_id == a.pk
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.status, a.reviewed_by, b.status, b.reviewed_by) == ("unreviewed", None, "unreviewed", None)
    assert a.claimed_by == alice and b.claimed_by is None  # one claim at a time: the latest undone image
    assert image_claim_next(user=alice, dataset=ds).pk == a.pk


def test_undo_refuses_when_someone_changed_the_image_since(ds, alice, bob):
    image = ImageFactory(dataset=ds)
    image_decide(user=alice, image_id=image.pk, action="confirm", version=1)
    image_decide(user=bob, image_id=image.pk, action="exclude", version=2)
    with pytest.raises(UndoConflict, match="was changed after your decision \\(bob changed it at "):
        review_undo(user=alice)
    image.refresh_from_db()
    assert (image.status, image.version) == ("excluded", 3)
    # Once bob takes his back, alice's decision stands again and she may undo it.
    review_undo(user=bob)
    review_undo(user=alice)
    assert Image.objects.get(pk=image.pk).status == "unreviewed"


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_reviewers_no_double_claim_no_lost_update():
    """20 threads, each with its own database connection (on SQLite, the same file), claim and decide until the
    queue is empty; then all 20 decide one image on the same version at once."""
    ds = DatasetFactory(name="race")
    images = [ImageFactory(dataset=ds, suspicion=(i % 7) / 7 if i % 3 else None) for i in range(60)]
    users = [UserFactory(username=f"r{i}") for i in range(20)]
    claims, errors = [], []
    start = threading.Barrier(len(users))

    def in_thread(work):
        def run(user):
            try:
                start.wait(timeout=20)
                work(user)
            except Exception as exc:  # noqa: BLE001 - reported by the assertions below
                errors.append(exc)
            finally:
                connection.close()
        threads = [threading.Thread(target=run, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)

    def review(user):
        while (image := image_claim_next(user=user, dataset=ds)) is not None:
            claims.append((user.pk, image.pk))
            image_decide(user=user, image_id=image.pk, action="confirm", version=image.version)

    began = time.monotonic()
    in_thread(review)
    assert not errors, errors
    claimed = [pk for _, pk in claims]
    assert sorted(claimed) == sorted(i.pk for i in images)  # every image claimed once, none twice
    assert LabelChange.objects.count() == 60
    assert set(Image.objects.filter(dataset=ds).values_list("version", "status")) == {(2, "confirmed")}
    deciders = dict(LabelChange.objects.values_list("image_id", "user_id"))
    assert all(deciders[pk] == user_pk for user_pk, pk in claims)

    target = ImageFactory(dataset=ds)
    won, lost = [], []

    def decide_same(user):
        try:
            image_decide(user=user, image_id=target.pk, action="relabel", label=users.index(user) % 8, version=1)
            won.append(user.pk)
        except VersionConflict:
            lost.append(user.pk)

    in_thread(decide_same)
    assert not errors, errors
    assert (len(won), len(lost)) == (1, 19)
    target.refresh_from_db()
    [change] = LabelChange.objects.filter(image=target)
    assert (target.version, target.label, target.reviewed_by_id, change.user_id) == (2, change.new_label, won[0], won[0])
    assert time.monotonic() - began < 60
