"""The dataset map page (/datasets/<name>/map/): the canvas, its legend and what the map was made from; the points
themselves come from the API (GET /api/datasets/<name>/map/, binary) and are drawn by static/js/dataset_map.js.
Hovering a point shows its thumbnail through map_image (a redirect to the image's media file)."""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from curation.maps import store
from curation.maps.params import embeddings_source
from curation.maps.project import umap_available
from curation.models import Image, Job
from curation.roles import user_is_curator
from curation.selectors import DatasetNotFound, dataset_get
from training.labels import CLASSES


def _dataset_or_404(name):
    try:
        return dataset_get(name=name)
    except DatasetNotFound as exc:
        raise Http404(str(exc)) from None


@login_required
@require_GET
def dataset_map(request, name):
    dataset = _dataset_or_404(name)
    stored = store.map_read(dataset)
    meta = stored[2] if stored is not None else None
    run, fingerprint = embeddings_source(dataset)
    pending = (Job.objects.filter(kind="map_dataset", params__dataset=dataset.name,
                                  status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).order_by("-id").first())
    config = {
        "dataset": dataset.name,
        "data": reverse("api-dataset-map", args=[dataset.name]),
        "selection": reverse("api-dataset-map-selection", args=[dataset.name]),
        "image": reverse("dataset_map_image", args=[dataset.name, 0]),
        "card": f"{reverse('review')}?",
        "classes": list(CLASSES),
        "statuses": store.STATUSES,
    }
    return render(request, "curation/pages/map.html", {
        "dataset": dataset, "meta": meta, "made_at": meta["made_at"][:16].replace("T", " ") if meta else "", "points": len(stored[0]) if stored is not None else 0,
        "current": store.map_is_current(meta, fingerprint), "run": run, "has_embeddings": fingerprint is not None,
        "pending": pending, "curator": user_is_curator(request.user), "umap_available": umap_available(),
        "config": config,
    })


@login_required
@require_GET
def dataset_map_image(request, name, image_id):
    """The image's file (a redirect to its media address): the map's hover thumbnail, one query."""
    file = (Image.objects.filter(dataset__name=name, pk=image_id).values_list("file", flat=True).first())
    if file is None:
        raise Http404(f"no image {image_id} in dataset {name}")
    return redirect(f"{settings.MEDIA_URL}{file}")
