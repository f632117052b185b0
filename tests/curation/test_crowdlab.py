"""CROWDLAB consensus and reviewer quality (curation/review/crowdlab.py): the ranking recovers known error rates, the
curator's threshold decides disputed vs applied, the pages show each reviewer's quality at a constant query count,
and bad thresholds are refused by name."""
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from scipy.stats import spearmanr

from curation.models import Dataset, Image, LabelChange, ReviewVote, Run
from curation.review.crowdlab import dataset_consensus_threshold_set, dataset_crowdlab
from curation.review.services import image_decide
from tests.factories import DatasetFactory, ImageFactory, RunFactory, UserFactory

ERROR_RATES = (0.02, 0.15, 0.3, 0.45, 0.6)


def _oof_run(ds, media, ids, probs):
    """A finished run of `ds` with out-of-fold probabilities `probs` for the image ids."""
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, folds=3)
    folder = media / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    np.savez(folder / "oof.npz", ids=np.asarray(ids, dtype=np.int64), labels=np.zeros(len(ids), dtype=np.int64),
             probs=np.asarray(probs, dtype=np.float32))
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")


def _noisy_truth_probs(rng, truth, strength=1.5):
    probs = rng.dirichlet(np.ones(8), len(truth))
    probs[np.arange(len(truth)), truth] += strength * rng.random(len(truth))
    return probs / probs.sum(1, keepdims=True)


def _simulated_votes(name, media, *, n_images=120, per_image=3, seed=0, k=3):
    """A dataset whose images were voted on by reviewers r0..r4 with ERROR_RATES (a wrong vote is a random other
    class), `per_image` of them per image, with noisy-truth out-of-fold probabilities. Returns (dataset, users)."""
    rng = np.random.default_rng(seed)
    ds = DatasetFactory(name=name, reviews_required=k)
    users = [UserFactory(username=f"{name}-r{m}") for m in range(len(ERROR_RATES))]
    truth = rng.integers(0, 8, n_images)
    images = [ImageFactory(dataset=ds, label=int(t), original_label=int(t)) for t in truth]
    votes = []
    for image, t in zip(images, truth):
        for m in rng.choice(len(users), per_image, replace=False):
            label = int(t) if rng.random() >= ERROR_RATES[m] else int((t + rng.integers(1, 8)) % 8)
            votes.append(ReviewVote(image=image, user=users[m], version=image.version, label=label,
                                    action="confirm" if label == t else "relabel"))
    ReviewVote.objects.bulk_create(votes)
    _oof_run(ds, media, [i.pk for i in images], _noisy_truth_probs(rng, truth))
    return ds, users


def test_the_quality_ranking_recovers_the_reviewers_error_rates(db, settings):
    ds, users = _simulated_votes("ranked", settings.MEDIA_ROOT)
    result = dataset_crowdlab(ds)
    assert result.reason is None and result.left_out == 0
    quality = {r["username"]: r["quality"] for r in result.reviewers}
    estimated = [quality[u.username] for u in users]
    rho = spearmanr(estimated, [1 - e for e in ERROR_RATES]).statistic
    assert rho >= 0.9, (estimated, rho)
    assert result.reviewers[0]["username"] == users[-1].username  # the worst reviewer listed first
    assert sum(r["votes"] for r in result.reviewers) == 3 * 120
    assert len(result.rounds) == 120


def _contested(ds, media, users, *, split=Image.Split.TRAIN, third="relabel", client=None):
    """An image labelled happy (1) whose three votes are happy, happy and sad (or exclude), with probabilities
    leaning to happy; and 30 unanimous images so that CROWDLAB has something to weigh reviewers by."""
    ann, ben, cat = users
    rng = np.random.default_rng(1)
    background = [ImageFactory(dataset=ds, label=int(t), original_label=int(t)) for t in rng.integers(0, 8, 30)]
    ReviewVote.objects.bulk_create([ReviewVote(image=i, user=u, version=i.version, action="confirm", label=i.label)
                                    for i in background for u in users])
    Image.objects.filter(pk__in=[i.pk for i in background]).update(version=2, status="confirmed")
    image = ImageFactory(dataset=ds, label=1, original_label=1, split=split)
    probs = [np.eye(8)[i.label] * 0.7 + 0.3 / 8 for i in background] + [np.eye(8)[1] * 0.6 + 0.4 / 8]
    _oof_run(ds, media, [i.pk for i in background] + [image.pk], probs)
    for user, action, label in ((ann, "confirm", None), (ben, "confirm", None), (cat, third, 4)):
        image.refresh_from_db()
        if client is not None and user is cat:  # the last vote through the review page, as a reviewer casts it
            client.force_login(cat)
            outcome = client.post(reverse("review_decide"), {"image_id": image.pk, "version": image.version,
                                                             "decision": f"{third}:{label}", "dataset": ds.name},
                                  follow=True).content.decode()
            continue
        outcome = image_decide(user=user, image_id=image.pk, action=action, version=image.version, label=label)
    image.refresh_from_db()
    return image, outcome


@pytest.mark.parametrize("threshold,applied", [(None, False), (0.0, True), (0.5, True), (1.0, False)])
def test_the_threshold_decides_disputed_or_applied(db, settings, threshold, applied):
    users = [UserFactory(username=n) for n in ("ann", "ben", "cat")]
    ds = DatasetFactory(name="triple", reviews_required=3, consensus_threshold=threshold)
    image, outcome = _contested(ds, settings.MEDIA_ROOT, users)
    if applied:
        assert outcome.outcome == "applied"
        assert (image.disputed, image.status, image.label) == (False, "confirmed", 1)
        [change] = LabelChange.objects.filter(image=image)
        assert change.note.startswith("CROWDLAB consensus of 3 votes (quality ")
        assert change.user.username == "cat"
    else:
        assert outcome.outcome == "disputed"
        assert image.disputed and image.status == "unreviewed"
        assert not LabelChange.objects.filter(image=image).exists()
    # the consensus quality the decision compared is the one the module reports
    quality = dataset_crowdlab(ds).rounds[image.pk, 1]["quality"]
    assert 0.5 <= quality < 1.0


def test_the_reviewer_is_told_crowdlab_decided(client, db, settings):
    users = [UserFactory(username=n) for n in ("ann", "ben", "cat")]
    ds = DatasetFactory(name="told", reviews_required=3, consensus_threshold=0.5)
    image, page = _contested(ds, settings.MEDIA_ROOT, users, client=client)
    assert image.status == "confirmed"
    assert "reviewers differed; CROWDLAB&#x27;s consensus applied: happy" in page
    assert "unanimous" not in page


def test_crowdlab_never_decides_an_exclude_vote_or_an_image_without_probabilities(db, settings):
    users = [UserFactory(username=n) for n in ("ann", "ben", "cat")]
    ds = DatasetFactory(name="excl", reviews_required=3, consensus_threshold=0.0)
    image, outcome = _contested(ds, settings.MEDIA_ROOT, users, third="exclude")
    assert outcome.outcome == "disputed" and image.disputed
    assert dataset_crowdlab(ds).exclude_votes == 1

    # the same votes on a validation image (no out-of-fold probabilities for it): left out, stays disputed
    ds3 = DatasetFactory(name="nopro", reviews_required=3, consensus_threshold=0.0)
    users3 = [UserFactory(username=n + "3") for n in ("ann", "ben", "cat")]
    ann, ben, cat = users3
    val = ImageFactory(dataset=ds3, label=1, original_label=1, split=Image.Split.VAL)
    other = ImageFactory(dataset=ds3, label=2, original_label=2)
    _oof_run(ds3, settings.MEDIA_ROOT, [other.pk], [np.eye(8)[2]])
    ReviewVote.objects.bulk_create([ReviewVote(image=other, user=u, version=1, action="confirm", label=2)
                                    for u in (ann, ben)])
    for user, action, label in ((ann, "confirm", None), (ben, "confirm", None), (cat, "relabel", 4)):
        val.refresh_from_db()
        outcome = image_decide(user=user, image_id=val.pk, action=action, version=val.version, label=label)
    assert outcome.outcome == "disputed"
    assert dataset_crowdlab(ds3).left_out == 1


def test_the_pages_show_each_reviewers_quality(client, db, settings):
    ds, users = _simulated_votes("shown", settings.MEDIA_ROOT, n_images=40)
    Image.objects.filter(dataset=ds).update(disputed=True)
    result = dataset_crowdlab(ds)
    client.force_login(users[0])
    disputes = client.get(reverse("review_disputes"), {"dataset": ds.name}).content.decode()
    dataset_page = client.get(reverse("dataset", args=[ds.name])).content.decode()
    for reviewer in result.reviewers:
        row = (f"<tr><th>{reviewer['username']}</th><td class=\"quality\">{reviewer['quality']:.3f}</td>"
               f"<td>{reviewer['votes']}</td>")
        assert row in disputes
        assert row in dataset_page
        assert f"{reviewer['username']} (quality {reviewer['quality']:.2f})" in disputes
    assert "CROWDLAB consensus: " in disputes


def test_query_counts_stay_constant_in_the_number_of_images(client, db, settings):
    counts = {"dataset": [], "review_disputes": []}
    for n in (10, 40):
        ds, users = _simulated_votes(f"count{n}", settings.MEDIA_ROOT, n_images=n, seed=n)
        Image.objects.filter(dataset=ds).update(disputed=True)
        client.force_login(users[0])
        for page, args, params in (("dataset", [ds.name], {}), ("review_disputes", [], {"dataset": ds.name})):
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(reverse(page, args=args), params).status_code == 200
            counts[page].append(len(ctx.captured_queries))
    assert counts["dataset"][0] == counts["dataset"][1]
    assert counts["review_disputes"][0] == counts["review_disputes"][1]


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "high", "nan"])
def test_a_bad_threshold_is_refused_by_name_in_the_command_and_the_form(client, db, bad):
    from tests.factories import CuratorFactory

    ds = DatasetFactory(name="guarded", reviews_required=3, consensus_threshold=0.7)
    with pytest.raises(CommandError, match=f"--consensus-threshold: consensus threshold must be .*{bad}"):
        call_command("review_settings", "guarded", "--consensus-threshold", bad)
    client.force_login(CuratorFactory(username="carl"))
    response = client.post(reverse("dataset_consensus_threshold", args=[ds.name]), {"consensus_threshold": bad})
    assert response.status_code == 400
    assert "Not saved: Consensus threshold must be" in response.content.decode()
    assert bad in response.content.decode()
    assert Dataset.objects.get(pk=ds.pk).consensus_threshold == 0.7  # nothing stored is lost


def test_the_threshold_is_set_and_cleared_by_the_command_and_the_form(client, db, capsys):
    from tests.factories import CuratorFactory

    ds = DatasetFactory(name="settable", reviews_required=3)
    call_command("review_settings", "settable", "--consensus-threshold", "0.8")
    assert Dataset.objects.get(pk=ds.pk).consensus_threshold == 0.8
    assert "consensus at quality >= 0.8" in capsys.readouterr().out
    call_command("review_settings", "settable", "--consensus-threshold", "off")
    assert Dataset.objects.get(pk=ds.pk).consensus_threshold is None
    client.force_login(CuratorFactory(username="carl"))
    client.post(reverse("dataset_consensus_threshold", args=[ds.name]), {"consensus_threshold": "0.65"})
    assert Dataset.objects.get(pk=ds.pk).consensus_threshold == 0.65
    client.post(reverse("dataset_consensus_threshold", args=[ds.name]), {"consensus_threshold": ""})
    assert Dataset.objects.get(pk=ds.pk).consensus_threshold is None
    dataset_consensus_threshold_set(dataset_id=ds.pk, consensus_threshold=0.5)
    assert 'id="consensus-threshold"' in client.get(reverse("dataset", args=[ds.name])).content.decode()


def test_the_benchmark_runs_and_reports_the_ranking(capsys):
    from benchmarks.crowdlab import main

    mean = main(["--n", "300", "--seeds", "0"])
    out = capsys.readouterr().out
    assert mean["rho"] >= 0.8 and mean["crowdlab"] > mean["classifier"]
    assert "meets the goal of 0.8 with 5 reviewers" in out
    assert "threshold  differing rounds applied" in out
