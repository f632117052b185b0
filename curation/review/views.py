"""The browser review queue: a page that shows one claimed image at a time, and the POSTs that decide it.

Each view parses its input, calls one review service and answers with the next card: the card partial for htmx
requests, a redirect back to the page otherwise (the page works without JavaScript)."""
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from curation.forms import form_error_text
from curation.models import Dataset, Image
from curation.review.card import review_card
from curation.review.decisions import decision_make
from curation.review.forms import DECISION_WORDS, DecisionForm, ReviewFilterForm
from curation.review.glossary import figures
from curation.review.selectors import dataset_awaits_scoring, review_progress
from curation.review.services import (
    ClaimLost,
    LeaseHeld,
    NothingToUndo,
    image_claim_next,
    image_lease_extend,
    review_undo,
)
from curation.review.votes import APPLIED, DISPUTED, PENDING, VoteRefused
from curation.services import VersionConflict
from training.labels import CLASSES, label_name

PAGE, CARD = "curation/review.html", "curation/review_card.html"
# Keys 1-8 relabel to the class of that position in the canonical order.
CLASS_KEYS = [(str(code + 1), code, name) for code, name in enumerate(CLASSES)]
FIGURES = figures()
# Said where a decision, on any page, queued the rescore of review rounds (curation/review/decisions.py).
RESCORE_QUEUED = ("Rescoring the queue with the labels reviewed so far (review rounds); the order changes when it "
                  "is done.")


@login_required
@require_GET
def review_queue(request):
    return _next_card(request, ReviewFilterForm(request.GET))


@login_required
@require_POST
def review_decide(request):
    decision = DecisionForm(request.POST)
    if not decision.is_valid():
        messages.error(request, form_error_text(decision))
    else:
        action, label = decision.cleaned_data["decision"]
        image_id = decision.cleaned_data["image_id"]
        try:
            result, rescore = decision_make(user=request.user, image_id=image_id, action=action,
                                            version=decision.cleaned_data["version"],
                                            label=label, seconds_spent=decision.seconds_spent(time.time()))
        except (LeaseHeld, VoteRefused) as exc:
            messages.error(request, f"Conflict: {exc}.")
        except VersionConflict as exc:
            messages.error(request, f"Conflict: image {image_id} changed while you looked at it: "
                                    f"{exc.change_words(request.user)}. Your {action} was not recorded and nothing "
                                    f"was overwritten.")
        except Image.DoesNotExist:
            messages.error(request, f"Image {image_id} no longer exists; nothing was recorded.")
        else:
            done = (f"relabelled to {label_name(label)}" if result.action == "relabel"
                    else DECISION_WORDS[result.action])  # a relabel to its own label is a confirm
            messages.success(request, f"Image {image_id} {done}{_vote_outcome(result)}.")
            if rescore is not None:
                messages.info(request, RESCORE_QUEUED)
    return _next_card(request, ReviewFilterForm(request.POST))


@login_required
@require_POST
def review_undo_last(request):
    try:
        undo = review_undo(user=request.user)
    except NothingToUndo as exc:
        messages.error(request, f"Nothing undone: {exc}.")
    except VersionConflict as exc:  # UndoConflict
        messages.error(request, f"Nothing undone: {exc.message_for(request.user)}.")
    else:
        if undo.change is None:
            messages.success(request, f"Withdrew your {undo.undone.action} vote on image {undo.undone.image_id}.")
        else:
            messages.success(request, f"Undid your {undo.undone.action} of image {undo.undone.image_id}.")
    return _next_card(request, ReviewFilterForm(request.POST))


@login_required
@require_POST
def review_lease(request):
    """Polled while a card is open. 204: lease renewed; 286 (htmx: stop polling) with a warning: lease lost."""
    try:
        image_lease_extend(user=request.user, image_id=int(request.POST.get("image_id", "0")))
    except (ClaimLost, ValueError) as exc:
        return HttpResponseStopPolling(f'<p id="lease" class="error">{exc}. Load the next image.</p>')
    return HttpResponse(status=204)


def _run_cell(filter_form):
    """Words for a run's confusion-matrix cell the queue is browsing, or ""."""
    data = filter_form.cleaned_data
    if data.get("run") is None:
        return ""
    words = f"Test images of run {data['run'].pk}"
    if data.get("label") is not None:
        words += f" labelled {label_name(data['label'])}"
    if data.get("predicted") is not None:
        words += f", predicted {label_name(data['predicted'])}"
    return words


def _vote_outcome(result):
    """How a vote ended, for the message (datasets needing several reviews); nothing for a plain decision."""
    if result.vote is None:
        return ""
    consensus = getattr(result.vote, "consensus", None)
    if result.outcome == APPLIED and consensus is not None:
        return f" (reviewers differed; CROWDLAB's consensus applied: {consensus['consensus_name']})"
    return {PENDING: " (your vote is in; more reviews needed)", APPLIED: " (unanimous: applied)",
            DISPUTED: " (reviewers disagree: sent to the curators)"}.get(result.outcome, "")


def _guidelines(dataset):
    """The dataset's guidelines as [(class name, text)] in the canonical class order, for the `?` dialog."""
    stored = (dataset.guidelines or {}) if dataset is not None else {}
    return [(name, stored[name]) for name in CLASSES if stored.get(name)]


def _next_card(request, filter_form):
    """Claim the next image under the filter and render it: the card partial for htmx, the page (GET) or a
    redirect to it (POST without htmx) otherwise."""
    valid = filter_form.is_valid()
    # An invalid value is shown beside its field (the page offers no card until it is fixed, rather than claim that
    # the queue is empty); the rest of the filter is kept, in the form and in the links.
    query = filter_form.query()
    if request.method == "POST" and not request.htmx:
        return redirect(f"{reverse('review')}?{urlencode(query)}")
    dataset = filter_form.cleaned_data.get("dataset") or Dataset.objects.order_by("name").first()
    image = progress = card = None
    not_scored = held_back = False
    if valid and dataset is not None:
        query["dataset"] = dataset.name
        filters = filter_form.queue_filters()
        # Before scoring there is no suspicion to order the queue by: say so rather than serve an image in import
        # order, unless asked to. Val and test images are never scored (nor, so, a run's confusion-matrix cell).
        not_scored = (filters["run"] is None and filters["split"] in (None, Image.Split.TRAIN)
                      and dataset_awaits_scoring(dataset=dataset))
        held_back = not_scored and not filter_form.cleaned_data.get("unscored")
    if valid and dataset is not None and not held_back:
        image = image_claim_next(user=request.user, dataset=dataset, filters=filters)
        card = review_card(image=image, run=filters["run"]) if image else None
        progress = review_progress(user=request.user, dataset=dataset, filters=filters)
    context = {
        "filter_form": filter_form, "filter_invalid": not valid,
        "dataset": dataset, "image": image, "card": card, "progress": progress,
        "not_scored": not_scored, "held_back": held_back,
        "history": card["history"] if card else [], "run_cell": _run_cell(filter_form) if valid else "",
        "query_string": urlencode(query),
        "query": query, "class_keys": CLASS_KEYS, "media_url": settings.MEDIA_URL, "shown_at": f"{time.time():.3f}",
        "lease_poll_seconds": max(5, int(settings.REVIEW_LEASE_SECONDS) // 3),
        "figures": FIGURES, "dataset_guidelines": _guidelines(dataset),
    }
    return render(request, CARD if request.htmx else PAGE, context)


