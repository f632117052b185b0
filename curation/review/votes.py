"""Several reviewers per image (Dataset.reviews_required = K > 1): votes, what K votes lead to, and the curators'
disputes. With K = 1 none of this runs: a decision applies at once (curation.review.services.image_decide).

With K > 1 a confirm, relabel or exclude is a vote (a ReviewVote row), not yet a label change. A round of votes is
the image's version: the image stays in the queue, offered to reviewers who have not voted in its round (one at a
time, under the same leases), until its K-th vote. Then:
- unanimous (the same label, or all exclude): the decision is applied through curation.services.image_label_change,
  credited to the reviewer whose vote completed the round, the voters named in the change's note. So there is one
  LabelChange for the applied decision, and each reviewer's vote is its own ReviewVote row (the per-vote audit).
- otherwise, where a curator set a consensus threshold (Dataset.consensus_threshold), CROWDLAB's consensus
  (curation.review.crowdlab) applies the same way when its quality is at least the threshold;
- otherwise the image is marked disputed: it leaves the queue and waits on /review/disputes/, where a curator
  decides it through image_label_change as well (the dispute is cleared in the same transaction).

Undo and votes: a reviewer's undo takes back their newest vote whose round is still open: the vote is withdrawn
(`withdrawn_at` set, the row kept) and they get the image's lease back to vote again. Votes of a closed round are
final. An applied decision is undone like any other, by the reviewer it is credited to; the image is then unreviewed
at a new version, which is a fresh round of K votes. A dispute is not undone by its voters; a curator resolves it.
"""
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from curation.models import Image, LabelChange, ReviewVote
from curation.review.crowdlab import round_decision
from curation.review.leases import lease_take, leases_release
from curation.roles import user_is_curator
from curation.services import VersionConflict, image_label_change, image_last_change
from training.labels import NUM_CLASSES

PENDING, APPLIED, DISPUTED = "pending", "applied", "disputed"
# A disputes page shows at most this many images (most suspicious first).
DISPUTES_PAGE = 200


class VoteRefused(VersionConflict):
    """The vote cannot count: the image awaits a curator, or the user already voted in this round."""

    def __init__(self, image_id, actual, reason):
        Exception.__init__(self, f"image {image_id} {reason}; your vote was not recorded")
        self.image_id, self.expected, self.actual = image_id, actual, actual

    def message_for(self, user):
        return str(self)


class NotDisputed(Exception):
    """A curator tried to resolve an image that is not (or no longer) disputed."""


def _voted_for(action, label, image):
    """What a vote says about the image: ("exclude", None) or ("label", code)."""
    if action == ReviewVote.Action.EXCLUDE:
        return ReviewVote.Action.EXCLUDE, None
    if action == ReviewVote.Action.RELABEL:
        if label is None or not 0 <= int(label) < NUM_CLASSES:
            raise ValueError(f"relabel needs a label code 0-{NUM_CLASSES - 1}, got {label!r}")
        return "label", int(label)
    return "label", image.label


def _as_decision(choice, image):
    """(action, label) that applies a unanimous choice through image_label_change."""
    kind, label = choice
    if kind == ReviewVote.Action.EXCLUDE:
        return LabelChange.Action.EXCLUDE, None
    if label == image.label:
        return LabelChange.Action.CONFIRM, None
    return LabelChange.Action.RELABEL, label


def image_vote(*, user, image_id, action, version, label=None, seconds_spent=None):
    """Record `user`'s vote (confirm, relabel to `label`, exclude) on an image made on `version`; returns the
    ReviewVote with `outcome` (pending, applied, disputed) and `change` (the LabelChange applied, or None).

    Locks the image's row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every write transaction is IMMEDIATE and
    so serialised) so that concurrent votes are counted one after the other and a round closes exactly once.
    Raises VersionConflict (stale version), VoteRefused (disputed, or already voted in this round), ValueError.
    """
    action = ReviewVote.Action(action)
    with transaction.atomic():
        image = Image.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=image_id)
        if image.version != version:
            raise VersionConflict(image_id, version, image.version, last_change=image_last_change(image_id))
        if image.disputed:
            raise VoteRefused(image_id, image.version, "awaits a curator (its reviewers disagreed)")
        kind, voted_label = _voted_for(action, label, image)
        current = ReviewVote.objects.filter(image=image, version=version, withdrawn_at__isnull=True)
        if current.filter(user=user).exists():
            raise VoteRefused(image_id, image.version, "already has your vote in this round")
        vote = ReviewVote.objects.create(image=image, user=user, version=version, action=action, label=voted_label,
                                         seconds_spent=seconds_spent)
        Image.objects.filter(pk=image_id, claimed_by=user).update(claimed_by=None, claim_expires_at=None)
        votes = list(current.select_related("user").order_by("id"))
        vote.outcome, vote.change, vote.consensus = PENDING, None, None
        if len(votes) >= image.dataset.reviews_required:
            choices = {_voted_for(v.action, v.label, image) for v in votes}
            if len(choices) == 1:
                decision, new_label = _as_decision(choices.pop(), image)
                vote.change = image_label_change(
                    image_id=image_id, action=decision, expected_version=version, user=user, label=new_label,
                    seconds_spent=seconds_spent,
                    note=f"unanimous vote of {len(votes)}: " + ", ".join(v.user.username for v in votes))
                vote.outcome = APPLIED
            else:
                # A curator's threshold (Dataset.consensus_threshold) lets CROWDLAB decide a confident consensus;
                # without one, or below it, the image goes to the disputes page as before.
                decided, vote.consensus = round_decision(image.dataset, image, choices)
                if decided is not None:
                    decision, new_label = _as_decision(("label", decided), image)
                    vote.change = image_label_change(
                        image_id=image_id, action=decision, expected_version=version, user=user, label=new_label,
                        seconds_spent=seconds_spent,
                        note=f"CROWDLAB consensus of {len(votes)} votes (quality {vote.consensus['quality']:.2f} >= "
                             f"{image.dataset.consensus_threshold:.2f}): "
                             + ", ".join(v.user.username for v in votes))
                    vote.outcome = APPLIED
                else:
                    Image.objects.filter(pk=image_id).update(disputed=True, claimed_by=None, claim_expires_at=None)
                    vote.outcome = DISPUTED
    return vote


def vote_latest_open(*, user, lookback=50):
    """The user's newest vote that still counts in an open round (the image is at the vote's version and not
    disputed), or None."""
    recent = (ReviewVote.objects.filter(user=user, withdrawn_at__isnull=True).select_related("image")
              .order_by("-id")[:lookback])
    for vote in recent:
        if vote.image.version == vote.version and not vote.image.disputed:
            return vote
    return None


def vote_withdraw(*, user, vote):
    """Withdraw `user`'s open vote (the row stays, with withdrawn_at) and give them the image's lease if nobody
    else holds it. Raises VoteRefused when the round closed meanwhile."""
    now = timezone.now()
    with transaction.atomic():
        image = Image.objects.select_for_update(of=("self",)).get(pk=vote.image_id)
        if image.version != vote.version or image.disputed or vote.user_id != user.pk:
            raise VoteRefused(image.pk, image.version, "was decided since your vote")
        ReviewVote.objects.filter(pk=vote.pk, withdrawn_at__isnull=True).update(withdrawn_at=now)
        leases_release(user=user)
        lease_take(Image.objects.filter(pk=image.pk), user=user, now=now)
    vote.withdrawn_at = now
    return vote


def dispute_resolve(*, user, image_id, action, version, label=None, note=""):
    """A curator decides a disputed image (confirm, relabel to `label`, exclude) through image_label_change and
    clears the dispute, in one transaction; returns the LabelChange. Raises PermissionDenied (not a curator),
    NotDisputed, VersionConflict, ValueError."""
    if not user_is_curator(user):
        raise PermissionDenied("only curators resolve disputes")
    with transaction.atomic():
        image = Image.objects.select_for_update(of=("self",)).get(pk=image_id)
        if not image.disputed:
            raise NotDisputed(f"image {image_id} is not disputed (resolved already?)")
        change = image_label_change(image_id=image_id, action=action, expected_version=version, user=user,
                                    label=label, note=note or "dispute resolved by a curator")
        Image.objects.filter(pk=image_id).update(disputed=False)
    return change


def disputes_list(*, dataset, limit=DISPUTES_PAGE):
    """The dataset's disputed images, most suspicious first, each with `round_votes` (its round's votes, oldest
    first, with their voters). Two queries, whatever the number of images."""
    images = list(Image.objects.filter(dataset=dataset, disputed=True).order_by("-suspicion", "id")[:limit])
    by_image = {image.pk: image for image in images}
    for image in images:
        image.round_votes = []
    votes = (ReviewVote.objects.filter(image__in=list(by_image), withdrawn_at__isnull=True)
             .select_related("user").order_by("id"))
    for vote in votes:
        image = by_image[vote.image_id]
        if vote.version == image.version:
            image.round_votes.append(vote)
    return images
