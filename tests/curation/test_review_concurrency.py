"""20 reviewers at once, each a thread with its own database connection (on CI: PostgreSQL, where claims go through
SELECT ... FOR UPDATE SKIP LOCKED; on SQLite: the conditional UPDATE alone). Bounded in images and time."""
import random
import threading
import time

import pytest
from django.db import connection

from curation.models import Image, LabelChange, ReviewVote
from curation.review.selectors import review_queue
from curation.review.services import LeaseHeld, image_claim_next, image_decide
from curation.services import VersionConflict
from tests.factories import DatasetFactory, ImageFactory, UserFactory

REVIEWERS = 20


def _run_threads(users, work, timeout=120):
    errors = []
    start = threading.Barrier(len(users))

    def run(user, index):
        try:
            start.wait(timeout=30)
            work(user, index)
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertions
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(u, i)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "reviewers still running at the time limit"
    return errors


@pytest.mark.django_db(transaction=True)
def test_twenty_reviewers_mixed_decisions_and_stale_writes_no_double_claim_no_lost_update():
    """Each reviewer claims and decides (confirm, relabel, exclude) until the queue is empty; between claims it
    also fires a decision at a random image with version 1 (a grid page opened at the start), which is refused
    while another reviewer holds the image's lease and is a conflict where the image was decided already.
    Afterwards: no image was ever held by two reviewers at once, every decision was either applied or refused
    (a conflict, or a lease held), a lease holder's own decision was never refused, the audit rows are exactly the
    applied decisions, and each image's version counts them."""
    ds = DatasetFactory(name="race")
    images = [ImageFactory(dataset=ds, suspicion=random.Random(i).random() if i % 4 else None) for i in range(200)]
    pks = [i.pk for i in images]
    users = [UserFactory(username=f"r{i}") for i in range(REVIEWERS)]
    held, lock = {}, threading.Lock()
    used = {pk: [] for pk in pks}  # the versions the applied decisions on each image were made on
    double_claims, applied, conflicts, lease_refusals, holder_refused = [], [], [], [], []

    def review(user, index):
        rng = random.Random(index)
        while (image := image_claim_next(user=user, dataset=ds)) is not None:
            with lock:
                if held.get(image.pk) not in (None, user.pk):
                    double_claims.append((image.pk, held[image.pk], user.pk))
                held[image.pk] = user.pk
            action = rng.choice(["confirm", "relabel", "exclude"])
            label = rng.randrange(8) if action == "relabel" else None
            _decide(user, image.pk, action, image.version, label, holder=True)
            with lock:  # decided (by this reviewer or, in a lost race, a stale writer): never claimable again
                held.pop(image.pk, None)
            if rng.random() < 0.3:  # a write racing the queue: from a grid page opened at the start (version 1)
                _decide(user, rng.choice(pks), "relabel", 1, rng.randrange(8))

    def _decide(user, pk, action, version, label, holder=False):
        try:
            change = image_decide(user=user, image_id=pk, action=action, version=version, label=label).change
        except LeaseHeld:
            with lock:
                lease_refusals.append(pk)
                if holder:
                    holder_refused.append(pk)
        except VersionConflict:
            with lock:
                conflicts.append(pk)
                if holder:
                    holder_refused.append(pk)
        else:
            with lock:
                applied.append((pk, change.pk))
                used[pk].append(version)

    errors = _run_threads(users, review)
    assert not errors, errors
    assert not double_claims, double_claims
    assert not holder_refused, holder_refused  # the lease holds: nobody decided an image under another's lease
    assert len(applied) >= len(images) and conflicts and lease_refusals  # the races happened
    assert LabelChange.objects.filter(image__dataset=ds).count() == len(applied)
    assert sorted(LabelChange.objects.filter(image__dataset=ds).values_list("pk", flat=True)) == \
        sorted(pk for _, pk in applied)
    per_image = {}
    for pk, _ in applied:
        per_image[pk] = per_image.get(pk, 0) + 1
    versions = dict(Image.objects.filter(dataset=ds).values_list("pk", "version"))
    assert all(versions[pk] == 1 + per_image.get(pk, 0) for pk in pks)
    # No lost update: each version of an image was decided on once (two writers on one version: one conflicts).
    assert all(sorted(used[pk]) == list(range(1, versions[pk])) for pk in pks)
    assert not Image.objects.filter(dataset=ds, status="unreviewed").exists()
    assert not Image.objects.filter(dataset=ds, claimed_by__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_twenty_reviewers_voting_on_a_dataset_needing_two_reviews():
    """K = 2: every image ends with exactly two votes from two different reviewers, and is either applied (one
    LabelChange) or disputed (none), never both, never a third vote."""
    ds = DatasetFactory(name="votes", reviews_required=2)
    images = [ImageFactory(dataset=ds, suspicion=i / 60) for i in range(60)]
    users = [UserFactory(username=f"v{i}") for i in range(REVIEWERS)]

    def review(user, index):
        rng = random.Random(index)
        while True:
            image = image_claim_next(user=user, dataset=ds)
            if image is None:
                # Images leased by others may still need this reviewer's vote once they are released.
                if not review_queue(user=user, dataset=ds).exists():
                    return
                time.sleep(0.01)
                continue
            image_decide(user=user, image_id=image.pk, action=rng.choice(["confirm", "exclude"]),
                         version=image.version)

    errors = _run_threads(users, review)
    assert not errors, errors
    for image in Image.objects.filter(dataset=ds):
        voters = list(ReviewVote.objects.filter(image=image).values_list("user_id", flat=True))
        changes = LabelChange.objects.filter(image=image).count()
        assert len(voters) == 2 and len(set(voters)) == 2, (image.pk, voters)
        assert (image.disputed, changes) in ((True, 0), (False, 1)), (image.pk, image.disputed, changes)
        assert image.status == ("unreviewed" if image.disputed else image.status) and image.claimed_by_id is None
    assert len(images) == Image.objects.filter(dataset=ds).count()
