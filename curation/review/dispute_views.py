"""The curators' list of disputed images (datasets needing several reviews per image) and the agreement between
reviewers. Anyone signed in may look; only curators resolve."""
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
from curation.review.agreement import dataset_agreement
from curation.review.crowdlab import dataset_crowdlab
from curation.review.decisions import dispute_decide
from curation.review.forms import DECISION_WORDS, DecisionForm
from curation.review.views import CLASS_KEYS, RESCORE_QUEUED
from curation.review.votes import NotDisputed, disputes_list
from curation.roles import user_is_curator
from curation.services import VersionConflict
from training.labels import label_name


@login_required
@require_GET
def review_dispute_list(request):
    datasets = list(Dataset.objects.order_by("name"))
    name = request.GET.get("dataset")
    dataset = next((d for d in datasets if d.name == name), None) if name else None
    if dataset is None:
        dataset = next((d for d in datasets if d.reviews_required > 1), datasets[0] if datasets else None)
    context = {"datasets": datasets, "dataset": dataset, "images": [], "agreement": None, "crowdlab": None,
               "is_curator": user_is_curator(request.user), "class_keys": CLASS_KEYS,
               "media_url": settings.MEDIA_URL}
    if dataset is not None:
        context["images"] = disputes_list(dataset=dataset)
        context["agreement"] = dataset_agreement(dataset)
        context["crowdlab"] = crowdlab = dataset_crowdlab(dataset)
        quality = {r["user_id"]: r["quality"] for r in crowdlab.reviewers}
        for image in context["images"]:
            image.consensus = crowdlab.rounds.get((image.pk, image.version))
            for vote in image.round_votes:
                vote.reviewer_quality = quality.get(vote.user_id)
    return render(request, "curation/review_disputes.html", context)


@login_required
@require_POST
def review_dispute_resolve(request):
    if not user_is_curator(request.user):
        raise PermissionDenied("only curators resolve disputes")
    decision = DecisionForm(request.POST)
    dataset = request.POST.get("dataset", "")
    if not decision.is_valid():
        messages.error(request, form_error_text(decision))
    else:
        action, label = decision.cleaned_data["decision"]
        image_id = decision.cleaned_data["image_id"]
        try:
            _, rescore = dispute_decide(user=request.user, image_id=image_id, action=action, label=label,
                                        version=decision.cleaned_data["version"])
        except VersionConflict as exc:
            messages.error(request, f"Not resolved: {exc.message_for(request.user)}.")
        except (NotDisputed, ValueError) as exc:
            messages.error(request, f"Not resolved: {exc}.")
        except Image.DoesNotExist:
            messages.error(request, f"Image {image_id} no longer exists.")
        else:
            done = f"labelled {label_name(label)}" if action == "relabel" else DECISION_WORDS[action]
            messages.success(request, f"Dispute on image {image_id} resolved: {done}.")
            if rescore is not None:
                messages.info(request, RESCORE_QUEUED)
    return redirect(f"{reverse('review_disputes')}?{urlencode({'dataset': dataset})}")
