"""The grid view: many thumbnails of one filter at once, and one action (confirm, relabel, exclude) on a selection.

The grid claims what it shows: each page takes the lease on its images (as the queue does on its one), so no other
reviewer is offered them and a decision on them by anyone else is refused, naming the grid's user. It leaves out
images another reviewer holds, and each decision carries the version its tile showed, so an image changed meanwhile
is reported as a conflict by name and not overwritten. Curators may override a lease with the grid's checkbox."""
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.forms import form_error_text
from curation.models import Dataset, Image
from curation.review.forms import DECISION_WORDS, GridDecisionForm, ReviewFilterForm, page_number
from curation.review.selectors import review_grid_page
from curation.review.decisions import decisions_make_bulk
from curation.review.services import images_claim_shown
from curation.review.views import CLASS_KEYS, RESCORE_QUEUED
from curation.roles import user_is_curator
from training.labels import label_name

PAGE, GRID = "curation/review_grid.html", "curation/review_grid_part.html"


@login_required
@require_GET
def review_grid(request):
    return _grid(request, ReviewFilterForm(request.GET), _page(request.GET))


@login_required
@require_POST
def review_grid_decide(request):
    form = GridDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_error_text(form))
    else:
        action, label = form.cleaned_data["decision"]
        try:
            result, rescore = decisions_make_bulk(
                user=request.user, items=form.cleaned_data["items"], action=action, label=label,
                seconds_spent=form.seconds_per_image(time.time()), override_lease=form.cleaned_data["override_lease"])
        except (ValueError, PermissionDenied) as exc:
            messages.error(request, f"Nothing recorded: {exc}.")
        else:
            _report(request, result, action, label)
            if rescore is not None:
                messages.info(request, RESCORE_QUEUED)
    return _grid(request, ReviewFilterForm(request.POST), _page(request.POST))


def _page(data):
    return page_number(data.get("page"))


def _report(request, result, action, label):
    done = f"relabelled to {label_name(label)}" if action == "relabel" else DECISION_WORDS[action]
    if result.decided:
        messages.success(request, f"{len(result.decided)} image{'s' if len(result.decided) != 1 else ''} {done}.")
    if result.conflicts:
        names = Image.objects.filter(pk__in=result.conflicts).order_by("path").values_list("path", flat=True)
        messages.error(request, f"Conflict: {', '.join(names)} changed since the grid showed "
                                f"{'them' if len(result.conflicts) > 1 else 'it'}; nothing was overwritten "
                                f"(not {done}).")
    for held in result.held:
        messages.error(request, f"Conflict: {held}.")
    if result.missing:
        messages.error(request, f"{len(result.missing)} selected image(s) no longer exist.")


def _grid(request, filter_form, page):
    valid = filter_form.is_valid()
    # An invalid value is shown beside its field (the page offers no card until it is fixed, rather than claim that
    # the queue is empty); the rest of the filter is kept, in the form and in the links.
    query = filter_form.query()
    if request.method == "POST" and not request.htmx:
        return redirect(f"{reverse('review_grid')}?{urlencode({**query, 'page': page})}")
    dataset = filter_form.cleaned_data.get("dataset") or Dataset.objects.order_by("name").first()
    images, has_next = [], False
    if valid and dataset is not None:
        query["dataset"] = dataset.name
        images, has_next = review_grid_page(user=request.user, dataset=dataset,
                                            filters=filter_form.queue_filters(), page=page)
        if not images and page > 1:  # the page emptied (decided): show the one before
            page -= 1
            images, has_next = review_grid_page(user=request.user, dataset=dataset,
                                                filters=filter_form.queue_filters(), page=page)
        held = images_claim_shown(user=request.user, image_ids=[image.pk for image in images])
        images = [image for image in images if image.pk in held]  # one another reviewer took a moment ago: not shown
    context = {
        "filter_form": filter_form, "filter_invalid": not valid,
        "dataset": dataset, "images": images, "page": page, "has_next": has_next,
        "query": query, "query_string": urlencode(query), "class_keys": CLASS_KEYS, "media_url": settings.MEDIA_URL,
        "shown_at": f"{time.time():.3f}", "may_override": user_is_curator(request.user),
    }
    return render(request, GRID if request.htmx else PAGE, context)
