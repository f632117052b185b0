"""A card a reviewer understands: every figure explained on hover and in the `?` dialog, a key that accepts the
classifier's suggestion (through the same decision service as every other key), reference faces of the current and
suggested labels, and the curators' guidelines per class; the card's query count stays the same however many
images the dataset has."""
import html
import re

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import Dataset, Image, LabelChange, ReviewVote, Run
from curation.review.card import reference_faces
from curation.review.glossary import FIGURES
from tests.factories import (
    CuratorFactory,
    DatasetFactory,
    GanModelFactory,
    ImageFactory,
    RunFactory,
    TransformScoreFactory,
)

HTMX = {"HTTP_HX_REQUEST": "true"}
HAPPY, SAD, NEUTRAL = 1, 2, 0


def _html(response):
    return response.content.decode()


def _card(response):
    """The card's part of the page, without the `?` dialog."""
    page = _html(response)
    return page.split('<dialog id="keys"', 1)[0]


def _dialog(response):
    page = _html(response)
    return page[page.index('<dialog id="keys"'):page.index("</dialog>")]


def _oof_run(ds, media, rows):
    """A finished run of `ds` with out-of-fold probabilities: rows are (image, label it trained with, probs)."""
    run = RunFactory(dataset=ds, status=Run.Status.SUCCEEDED, folds=3)
    folder = media / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    np.savez(folder / "oof.npz", ids=np.array([r[0].pk for r in rows], dtype=np.int64),
             labels=np.array([r[1] for r in rows]), probs=np.array([r[2] for r in rows], dtype=np.float32))
    Run.objects.filter(pk=run.pk).update(oof_file=f"runs/{run.pk}/oof.npz")
    return Run.objects.get(pk=run.pk)


def _probs(label, p):
    row = [(1 - p) / 7] * 8
    row[label] = p
    return row


@pytest.fixture
def ds(db):
    return DatasetFactory(name="help")


@pytest.fixture
def scored(ds, _media_root):
    """The image on top of the queue: labelled happy, the classifier suggests sad. Train faces of happy and sad with
    out-of-fold probabilities of their own label from 0.50 to 0.95, plus faces that must never be references."""
    image = ImageFactory(dataset=ds, label=HAPPY, original_label=HAPPY, suspicion=0.99, label_quality=0.303,
                         classifier_flagged=True, classifier_suggested_label=SAD, gan_score=2.5,
                         gan_suggested_label=SAD, ambiguity=0.91, flagged=True)
    gan = GanModelFactory(dataset=ds, source_label=HAPPY, target_label=SAD)
    TransformScoreFactory(image=image, gan=gan, direction="AB", target_label=SAD, epoch=3, ssim=0.91,
                          ssim_into=0.7, z=2.5)
    rows = [(image, HAPPY, _probs(SAD, 0.8))]
    faces = {}
    for label in (HAPPY, SAD):
        for k in range(10):
            face = ImageFactory(dataset=ds, label=label, original_label=label, suspicion=0.1,
                                status=Image.Status.CONFIRMED if k % 2 else Image.Status.UNREVIEWED)
            rows.append((face, label, _probs(label, 0.5 + k * 0.05)))
            faces[label, k] = face
    # The most typical of all by their probabilities, but none stands for its label: relabelled away, excluded,
    # not a train image.
    moved = ImageFactory(dataset=ds, label=NEUTRAL, original_label=HAPPY, status=Image.Status.RELABELLED)
    gone = ImageFactory(dataset=ds, label=SAD, original_label=SAD, status=Image.Status.EXCLUDED)
    val = ImageFactory(dataset=ds, label=HAPPY, original_label=HAPPY, split=Image.Split.VAL)
    rows += [(moved, HAPPY, _probs(HAPPY, 0.99)), (gone, SAD, _probs(SAD, 0.99)), (val, HAPPY, _probs(HAPPY, 0.99))]
    run = _oof_run(ds, _media_root, rows)
    return {"image": image, "faces": faces, "run": run, "never": {moved.pk, gone.pk, val.pk}}


def test_every_figure_on_the_card_is_explained_on_hover_and_in_the_dialog(client, user, scored):
    client.force_login(user)
    response = client.get(reverse("review"), {"dataset": "help"})
    card, dialog = _card(response), _dialog(response)
    # Each score row carries its explanation, and the row's name is the plain one (the jargon is gone).
    rows = re.findall(r'<tr title="([^"]+)"><th>([^<]+)</th><td>(.*?)</td></tr>', card, re.S)
    explained = {html.unescape(name): html.unescape(title) for title, name, _ in rows}
    for key in ("suspicion", "classifier_confidence", "resemblance", "lookalike", "flagged"):
        name, text = FIGURES[key]
        assert explained.get(name) == text, key
    values = {html.unescape(name): " ".join(value.split()) for _, name, value in rows}
    assert values["Classifier's trust in the label"].startswith("0.303 (prefers another class)")
    assert values["Resembles another emotion"] == "2.50 standard deviations from typical, towards sad"
    for jargon in ("GAN score (z)", "label quality", "clf", "classifier says"):
        assert jargon not in card
    # The other figures: hover text wherever they are shown...
    for key in ("progress", "label", "status", "version", "label_issue", "suggestion", "probabilities",
                "transformations", "generator", "redrawn", "baseline", "references", "history"):
        assert f'title="{html.escape(FIGURES[key][1])}"' in card, key
    # ...and every explanation in the `?` dialog.
    for name, text in FIGURES.values():
        assert f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" in dialog


def _accept_button(card):
    match = re.search(r'<button name="decision" value="([^"]+)"\s+data-key="a"', card)
    return match.group(1) if match else None


def test_the_accept_key_relabels_to_the_suggestion_through_the_decision_service(client, user, scored):
    image = scored["image"]
    client.force_login(user)
    response = client.get(reverse("review"), {"dataset": "help"})
    card = _card(response)
    assert _accept_button(card) == f"relabel:{SAD}"
    assert "<kbd>a</kbd> accept suggestion: relabel to sad" in card
    assert "<kbd>a</kbd></td><td>accept the classifier's suggestion (relabel to sad)" in _dialog(response)
    client.post(reverse("review_decide"), {"image_id": image.pk, "version": image.version,
                                           "decision": _accept_button(card), "dataset": "help"}, **HTMX)
    image.refresh_from_db()
    assert (image.label, image.status, image.reviewed_by_id) == (SAD, Image.Status.RELABELLED, user.pk)
    change = LabelChange.objects.get(image=image)
    assert (change.action, change.old_label, change.new_label, change.user_id) == ("relabel", HAPPY, SAD, user.pk)


def test_the_accept_key_confirms_a_suggestion_equal_to_the_label_and_votes_where_several_reviews_are_needed(
        client, user, ds):
    Dataset.objects.filter(pk=ds.pk).update(reviews_required=2)
    image = ImageFactory(dataset=ds, label=HAPPY, original_label=HAPPY, suspicion=0.9,
                         classifier_suggested_label=HAPPY)
    client.force_login(user)
    card = _card(client.get(reverse("review"), {"dataset": "help"}))
    assert _accept_button(card) == "confirm"
    assert "accept suggestion: confirm happy" in card
    client.post(reverse("review_decide"), {"image_id": image.pk, "version": image.version,
                                           "decision": _accept_button(card), "dataset": "help"}, **HTMX)
    vote = ReviewVote.objects.get(image=image)
    assert (vote.user_id, vote.action, vote.label) == (user.pk, "confirm", HAPPY)
    image.refresh_from_db()
    assert image.status == Image.Status.UNREVIEWED  # one vote of two: nothing applied yet


def test_no_accept_key_without_a_suggestion(client, user, ds):
    ImageFactory(dataset=ds, suspicion=0.9)
    client.force_login(user)
    card = _card(client.get(reverse("review"), {"dataset": "help"}))
    assert 'data-image-id="' in card and _accept_button(card) is None


def test_the_reference_strip_shows_the_most_typical_faces_of_the_label_and_the_suggestion(client, user, scored):
    client.force_login(user)
    card = _card(client.get(reverse("review"), {"dataset": "help"}))
    strip = card[card.index('<section class="references"'):card.index("</section>")]
    shown = {}
    for label in ("happy", "sad"):
        row = strip[strip.index(f'data-label="{label}"'):]
        row = row[:row.index("</div>")]
        shown[label] = [int(pk) for pk in re.findall(r'data-image-id="(\d+)"', row)]
    faces = scored["faces"]
    # The five highest out-of-fold probabilities of their own label, highest first, confirmed or unreviewed alike.
    assert shown["happy"] == [faces[HAPPY, k].pk for k in (9, 8, 7, 6, 5)]
    assert shown["sad"] == [faces[SAD, k].pk for k in (9, 8, 7, 6, 5)]
    assert not scored["never"] & set(shown["happy"] + shown["sad"])
    assert scored["image"].pk not in shown["happy"]
    assert "(the current label)" in strip and "(the suggestion)" in strip


def test_a_face_relabelled_since_the_run_leaves_the_strip(user, scored):
    faces = scored["faces"]
    Image.objects.filter(pk=faces[HAPPY, 9].pk).update(label=SAD, status=Image.Status.RELABELLED)
    (happy,) = reference_faces(run=scored["run"], labels=[HAPPY])
    assert [i.pk for i in happy["images"]] == [faces[HAPPY, k].pk for k in (8, 7, 6, 5, 4)]


@pytest.mark.parametrize("with_references", [False, True])
def test_the_cards_query_count_does_not_grow_with_the_dataset(client, user, _media_root, with_references):
    counts = []
    for n in (5, 120):
        ds = DatasetFactory(name=f"grow{n}")
        top = ImageFactory(dataset=ds, label=HAPPY, original_label=HAPPY, suspicion=0.99,
                           classifier_suggested_label=SAD)
        others = [ImageFactory(dataset=ds, label=k % 2 + 1, original_label=k % 2 + 1, suspicion=0.1)
                  for k in range(n)]
        if with_references:
            _oof_run(ds, _media_root, [(top, HAPPY, _probs(SAD, 0.7))]
                     + [(o, o.label, _probs(o.label, 0.5 + (k % 40) / 100)) for k, o in enumerate(others)])
        Dataset.objects.filter(pk=ds.pk).update(guidelines={"happy": "Teeth or raised cheeks.", "sad": "Lips down."})
        client.force_login(user)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(reverse("review"), {"dataset": ds.name})
        card = _card(response)
        assert ('class="reference"' in card) is with_references and "Guideline for sad:" in card
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


# Guidelines


@pytest.fixture
def carl(db):
    return CuratorFactory(username="carl")


def _guidelines_post(client, ds, texts, *, seen=None):
    import json

    data = {f"guideline_{name}": text for name, text in texts.items()}
    data["seen"] = json.dumps(ds.guidelines if seen is None else seen)
    return client.post(reverse("dataset_guidelines", args=[ds.name]), data)


def test_a_curator_writes_guidelines_that_the_card_and_the_dialog_show(client, carl, user, scored, ds):
    client.force_login(carl)
    page = _html(client.get(reverse("dataset", args=["help"])))
    assert 'action="/datasets/help/guidelines/#guidelines"' in page and 'name="guideline_happy"' in page
    response = _guidelines_post(client, ds, {"happy": "Smile with raised cheeks.", "sad": "Lip corners down.",
                                             "fear": "Wide eyes, raised brows."})
    assert response.status_code == 302
    ds.refresh_from_db()
    assert ds.guidelines == {"happy": "Smile with raised cheeks.", "sad": "Lip corners down.",
                             "fear": "Wide eyes, raised brows."}
    page = _html(client.get(reverse("dataset", args=["help"])))
    assert "Smile with raised cheeks.</textarea>" in page

    client.force_login(user)
    response = client.get(reverse("review"), {"dataset": "help"})
    card, dialog = _card(response), _dialog(response)
    # On the card: the current label's and the suggestion's, not the others'.
    assert "Guideline for happy:</strong> Smile with raised cheeks." in card
    assert "Guideline for sad:</strong> Lip corners down." in card
    assert "Wide eyes" not in card
    # In the dialog: all of them.
    for name, text in (("happy", "Smile with raised cheeks."), ("sad", "Lip corners down."),
                       ("fear", "Wide eyes, raised brows.")):
        assert f"<dt>{name}</dt><dd>{text}</dd>" in dialog


def test_a_reviewer_reads_the_guidelines_but_may_not_change_them(client, user, ds):
    Dataset.objects.filter(pk=ds.pk).update(guidelines={"sad": "Lip corners down."})
    ds.refresh_from_db()
    client.force_login(user)
    page = _html(client.get(reverse("dataset", args=["help"])))
    assert "<dt>sad</dt><dd>Lip corners down.</dd>" in page
    assert "guideline_sad" not in page and "/guidelines/" not in page
    assert _guidelines_post(client, ds, {"sad": "Anything."}).status_code == 403
    ds.refresh_from_db()
    assert ds.guidelines == {"sad": "Lip corners down."}


def test_a_too_long_guideline_is_refused_naming_the_class_and_keeps_the_text(client, carl, ds):
    client.force_login(carl)
    response = _guidelines_post(client, ds, {"happy": "ok", "anger": "x" * 1001})
    assert response.status_code == 400
    page = _html(response)
    assert "The guideline for anger is 1001 characters; at most 1000." in page
    assert "x" * 1001 + "</textarea>" in page  # nothing typed is lost
    ds.refresh_from_db()
    assert ds.guidelines == {}


def test_two_curators_editing_guidelines_keep_each_others_work_or_are_told(client, carl, ds):
    Dataset.objects.filter(pk=ds.pk).update(guidelines={"happy": "Old happy.", "sad": "Old sad."})
    ds.refresh_from_db()
    seen = dict(ds.guidelines)
    client.force_login(carl)
    # Another curator changed sad meanwhile; this one changed happy only: both kept.
    Dataset.objects.filter(pk=ds.pk).update(guidelines={"happy": "Old happy.", "sad": "Their sad."})
    assert _guidelines_post(client, ds, {"happy": "My happy.", "sad": "Old sad."}, seen=seen).status_code == 302
    ds.refresh_from_db()
    assert ds.guidelines == {"happy": "My happy.", "sad": "Their sad."}
    # This one changed sad too, from the text they saw before the other's save: refused, named, nothing lost.
    response = _guidelines_post(client, ds, {"happy": "My happy.", "sad": "My sad."}, seen=seen)
    assert response.status_code == 400
    page = html.unescape(_html(response))
    assert "The guideline for sad changed since you opened this page" in page and "sad: “Their sad.”" in page
    assert "My sad.</textarea>" in page
    ds.refresh_from_db()
    assert ds.guidelines == {"happy": "My happy.", "sad": "Their sad."}


# Reviews per image


def test_a_curator_sets_reviews_per_image_on_the_dataset_page(client, carl, ds):
    client.force_login(carl)
    page = _html(client.get(reverse("dataset", args=["help"])))
    assert 'action="/datasets/help/review-settings/#review-settings"' in page and "Reviews per image" in page
    response = client.post(reverse("dataset_review_settings", args=["help"]), {"reviews_required": "3"},
                           follow=True)
    ds.refresh_from_db()
    assert ds.reviews_required == 3
    assert "help: 3 reviews per image from now on." in _html(response)


@pytest.mark.parametrize("value, words", [
    ("0", "Reviews per image must be 1-9, not 0."),
    ("12", "Reviews per image must be 1-9, not 12."),
    ("two", "Reviews per image must be a whole number 1-9, not &#x27;two&#x27;."),
    ("", "Reviews per image: enter a whole number 1-9."),
])
def test_a_bad_reviews_per_image_is_refused_naming_the_field(client, carl, ds, value, words):
    Dataset.objects.filter(pk=ds.pk).update(reviews_required=2)
    client.force_login(carl)
    response = client.post(reverse("dataset_review_settings", args=["help"]), {"reviews_required": value})
    page = _html(response)
    assert response.status_code == 400 and page.count(words) == 1  # beside the field, once
    ds.refresh_from_db()
    assert ds.reviews_required == 2


def test_a_reviewer_may_not_set_reviews_per_image(client, user, ds):
    client.force_login(user)
    page = _html(client.get(reverse("dataset", args=["help"])))
    assert "/review-settings/" not in page and "1 review per image: the first decision applies" in page
    assert client.post(reverse("dataset_review_settings", args=["help"]), {"reviews_required": "3"}).status_code == 403
    ds.refresh_from_db()
    assert ds.reviews_required == 1


def test_the_command_and_the_form_refuse_alike(ds):
    import io

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="reviews per image must be 1-9, not 10"):
        call_command("review_settings", "help", "--reviews-required", "10", stdout=io.StringIO())

