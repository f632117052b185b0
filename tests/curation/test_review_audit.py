"""The random audit slice of the review queue: the cards it serves, the decisions it records, the estimates it gives,
and the audit share refused outside [0, 0.5] by the page's form, the API and the review_settings command."""
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from curation.models import Image, LabelChange
from curation.review.audit import dataset_audit_estimates, wilson
from curation.review.services import image_claim_next, image_decide
from tests.factories import DatasetFactory, ImageFactory, UserFactory

SIZES = {0: 60, 1: 30, 2: 15}  # images per given label: unequal, so that proportional draws can be told apart


def _audited_dataset(name, share):
    """Label 0's images are the most suspicious (the ordinary queue serves them first), labels 1 and 2 the least;
    audit keys evenly spaced within each label and shuffled against the suspicion order."""
    ds = DatasetFactory(name=name, audit_share=share)
    for code, n in SIZES.items():
        for i in range(n):
            ImageFactory(dataset=ds, original_label=code, label=code, suspicion=(0.9 if code == 0 else 0.1) - i / 1000,
                         audit_key=((i * 7) % n + 0.5) / n)
    return ds


def test_wilson_interval_on_known_counts():
    # Published 95 % Wilson intervals (Newcombe 1998, table I): 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605.
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)


def test_estimates_from_known_audit_counts_and_not_enough_below_twenty(db):
    ds = DatasetFactory(name="known")
    # 50 images of label 0, every one in the audit (the audit walked through the label): 5 relabelled, 2 excluded,
    # 43 confirmed. Label 1: 10 images, all audited, 1 relabelled: too few for an interval.
    for i in range(50):
        status = (Image.Status.RELABELLED if i < 5 else Image.Status.EXCLUDED if i < 7 else Image.Status.CONFIRMED)
        ImageFactory(dataset=ds, original_label=0, label=2 if i < 5 else 0, status=status, audit=True,
                     audit_key=(i + 0.5) / 50, suspicion=1.0 if i < 7 else i / 100)
    for i in range(10):
        ImageFactory(dataset=ds, original_label=1, label=3 if i == 0 else 1, audit=True, audit_key=(i + 0.5) / 10,
                     status=Image.Status.RELABELLED if i == 0 else Image.Status.CONFIRMED, suspicion=i / 100)
    est = dataset_audit_estimates(ds)
    assert est["overall"]["n"] == 60 and est["overall"]["wrong"] == 8
    assert (est["overall"]["low"], est["overall"]["high"]) == pytest.approx(wilson(8, 60))
    neutral, happy = est["per_label"]
    assert neutral["n"] == 50 and neutral["estimate"] == pytest.approx(7 / 50)
    assert (neutral["low"], neutral["high"]) == pytest.approx((0.0695, 0.2619), abs=1e-4)  # by hand: 0.1657 -+ 0.0962
    assert happy == {"label": "happy", "images": 10, "n": 10, "wrong": 1, "enough": False}
    assert est["confusion"][0] == {"given": "neutral", "n": 50, "reviewed": {"neutral": 43, "sad": 5, "excluded": 2}}
    suspicion = next(s for s in est["signals"] if s["signal"].startswith("suspicion"))
    # The 7 wrong labels of label 0 rank above all 52 right ones, the wrong one of label 1 below them: 7/8.
    assert suspicion["n"] == 60 and suspicion["auroc"] == pytest.approx(0.875)
    assert suspicion["low"] < 0.875 < suspicion["high"]
    # 8 of the 60 are corrected: nothing is estimated to be left wrong.
    assert est["remaining"]["corrected"] == 8 and est["remaining"]["estimate"] == pytest.approx(0.0)


def test_fewer_than_twenty_audit_decisions_say_so_on_the_page_and_in_the_api(as_reviewer, reviewer_api, db):
    ds = DatasetFactory(name="young", audit_share=0.1)
    for i in range(12):
        ImageFactory(dataset=ds, original_label=0, label=0, status=Image.Status.CONFIRMED, audit=True,
                     audit_key=(i + 0.5) / 12)
    page = as_reviewer.get(reverse("dataset", args=["young"])).content.decode()
    assert "Estimated share of wrong labels: not enough audit decisions yet (12 of the 20 needed)" in page
    body = reviewer_api.get("/api/datasets/young/audit/").json()
    assert body["overall"] == {"n": 12, "wrong": 0, "enough": False, "pending": 0}
    summary = reviewer_api.get("/api/datasets/young/export-summary.json").json()
    assert summary["audit"]["overall"]["n"] == 12 and "treated as right" in summary["audit"]["assumptions"]


def test_the_queue_serves_its_audit_share_as_random_draws_stratified_by_label_and_records_audit_decisions(db):
    ds = _audited_dataset("audited", share=0.5)
    alice = UserFactory(username="alice")
    served, reached = [], {}
    for _ in range(60):
        # What the audit should draw next, from the test's own record: the label whose highest audit key served so far
        # is lowest (never drawn: lowest of all), and in it the lowest key not yet reviewed.
        unreviewed = {code: sorted(Image.objects.filter(dataset=ds, original_label=code, status=Image.Status.UNREVIEWED)
                                   .values_list("audit_key", flat=True)) for code in SIZES}
        lowest = min(reached.get(code, -1.0) for code in SIZES if unreviewed[code])
        image = image_claim_next(user=alice, dataset=ds)
        image.refresh_from_db()
        served.append((image.pk, image.original_label, image.audit))
        if image.audit:
            # Stratified by label: each draw tops up the label the audit lags most on, walking its random keys in order,
            # so every label's audit sample stays the same share of the label to within one step.
            assert reached.get(image.original_label, -1.0) == lowest
            assert image.audit_key == unreviewed[image.original_label][0]
            reached[image.original_label] = image.audit_key
        image_decide(user=alice, image_id=image.pk, action="confirm", version=image.version)
    audits = [s for s in served if s[2]]
    # Binomial(60, 0.5): outside 12-48 about once in 10^6 runs.
    assert 12 <= len(audits) <= 48
    # The ordinary cards follow suspicion (label 0 first); the audit's come from every label, interleaved.
    assert all(code == 0 for _, code, audit in served if not audit)
    assert {code for _, code, _ in audits} == {0, 1, 2}
    # Audit decisions are recorded as such in the audit trail and the API; the rest are not.
    changes = {c.image_id: c.audit for c in LabelChange.objects.filter(image__dataset=ds)}
    assert changes == {pk: audit for pk, _, audit in served}


def test_the_audit_share_is_off_at_zero_and_in_a_filtered_pass(db):
    ds = _audited_dataset("plain", share=0.0)
    alice = UserFactory(username="alice")
    for _ in range(20):
        image = image_claim_next(user=alice, dataset=ds)
        image_decide(user=alice, image_id=image.pk, action="confirm", version=image.version)
    ds.audit_share = 0.5
    ds.save()
    for _ in range(20):
        image = image_claim_next(user=alice, dataset=ds, filters={"split": "train"})
        image_decide(user=alice, image_id=image.pk, action="confirm", version=image.version)
    assert not Image.objects.filter(dataset=ds, audit=True).exists()
    assert not LabelChange.objects.filter(audit=True).exists()


def test_audit_decisions_show_in_the_image_history_of_the_api(reviewer_api, reviewer, db):
    ds = _audited_dataset("hist", share=0.5)
    for _ in range(12):
        image = image_claim_next(user=reviewer, dataset=ds)
        image_decide(user=reviewer, image_id=image.pk, action="confirm", version=image.version)
    audited = Image.objects.filter(dataset=ds, audit=True).first()
    ordinary = Image.objects.filter(dataset=ds, audit=False).exclude(status=Image.Status.UNREVIEWED).first()
    assert [c["audit"] for c in reviewer_api.get(f"/api/images/{audited.pk}/").json()["history"]] == [True]
    assert [c["audit"] for c in reviewer_api.get(f"/api/images/{ordinary.pk}/").json()["history"]] == [False]


@pytest.mark.parametrize("bad", ["0.7", "-0.1", "abc", "nan"])
def test_an_audit_share_outside_0_to_half_is_refused_naming_it_and_nothing_changes(as_curator, curator_api, bad,
                                                                                  reviewer_api, db):
    ds = DatasetFactory(name="strict", audit_share=0.05)
    response = as_curator.post(reverse("dataset_audit_share", args=["strict"]), {"audit_share": bad})
    assert response.status_code == 400
    assert "Not saved: Audit share must be" in response.content.decode() and bad in response.content.decode()
    response = curator_api.patch("/api/datasets/strict/audit/", {"audit_share": bad}, format="json")
    assert response.status_code == 400 and bad in response.json()["detail"]
    with pytest.raises(CommandError, match=f"--audit-share: audit share must be .*{bad}"):
        call_command("review_settings", "strict", "--audit-share", bad, "--reviews-required", "2")
    assert reviewer_api.patch("/api/datasets/strict/audit/", {"audit_share": "0.2"}, format="json").status_code == 403
    ds.refresh_from_db()
    assert (ds.audit_share, ds.reviews_required) == (0.05, 1)


def test_a_curator_sets_the_audit_share_by_form_api_and_command(as_curator, curator_api, db):
    ds = DatasetFactory(name="tuned")
    response = as_curator.post(reverse("dataset_audit_share", args=["tuned"]), {"audit_share": "0.1"})
    assert response.status_code == 302
    ds.refresh_from_db()
    assert ds.audit_share == 0.1
    assert curator_api.patch("/api/datasets/tuned/audit/", {"audit_share": 0}, format="json").json()["audit_share"] == 0
    call_command("review_settings", "tuned", "--audit-share", "0.5")
    ds.refresh_from_db()
    assert ds.audit_share == 0.5


def test_with_two_reviewers_per_image_audit_cards_are_voted_on_and_the_applied_decision_is_an_audit_one(db):
    ds = _audited_dataset("voted", share=0.5)
    ds.reviews_required = 2
    ds.save()
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for _ in range(20):
        for user in (alice, bob):
            image = image_claim_next(user=user, dataset=ds)
            image_decide(user=user, image_id=image.pk, action="confirm", version=image.version)
    applied = {c.image_id: c.audit for c in LabelChange.objects.filter(image__dataset=ds)}
    assert applied and any(applied.values())
    assert applied == dict(Image.objects.filter(pk__in=applied).values_list("pk", "audit"))
