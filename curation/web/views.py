"""Pages: jobs (start, watch, cancel), a dataset's summary, its runs and their comparison, its CycleGANs.

Views parse, call one selector or service, and render. Reviewers see every page; only curators see and use the
forms that start or cancel jobs or change which generators scoring uses (a POST from anyone else is a 403)."""
import json
import math
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from curation.classifier.relabels import MIN_REVIEWED, relabel_calibration
from curation.classifier.rescore_params import dataset_rescore_every_set
from curation.duplicates.leaks import dataset_leaks
from curation.forms import form_error_text
from curation.jobs.errors import JobParamsError
from curation.jobs.selectors import JobNotFound, workers_alive
from curation.jobs.services import job_cancel, job_enqueue, seed_jobs_enqueue
from curation.models import GanModel, Job
from curation.review.agreement import dataset_agreement
from curation.review.audit import dataset_audit_estimates, dataset_audit_share_set
from curation.review.crowdlab import dataset_consensus_threshold_set, dataset_crowdlab
from curation.review.dataset_settings import (
    GuidelinesConflict,
    dataset_guidelines_set,
    dataset_queue_run_set,
    dataset_reviews_required_set,
)
from curation.roles import user_is_curator
from curation.scoring.calibration import threshold_calibration
from curation.selectors import DatasetNotFound, dataset_get
from curation.truth import known_truth
from curation.web.selectors import dataset as dataset_selectors
from curation.web.selectors import gans as gan_selectors
from curation.web.selectors import jobs as job_selectors
from curation.web.selectors import runs as run_selectors
from curation.web.health_report import dataset_health_report, linked_matrix
from curation.web.forms import (
    START_FORMS,
    AuditShareForm,
    ConsensusThresholdForm,
    GanEpochForm,
    GuidelinesForm,
    ImportPredictionsForm,
    QueueModelForm,
    RescoreEveryForm,
    RetrainForm,
    ReviewSettingsForm,
    dataset_names,
    dataset_newest,
)
from curation.web.services import EpochNotSaved, gan_choose_epoch
from training.labels import CLASSES


def curator_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not user_is_curator(request.user):
            return HttpResponseForbidden("Only curators may do this.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def _dataset_or_404(name):
    try:
        return dataset_get(name=name)
    except DatasetNotFound as exc:
        raise Http404(str(exc)) from None


# Jobs


def _retrain_initial(request):
    """The retrain form's starting choices from the page's address (`?start=retrain&reduced=1&augmented=0&doubtful=
    classifier`: the run comparison's "retrain without it" link); only the keys given."""
    initial = {}
    for key in ("reduced", "augmented"):
        if key in request.GET:
            initial[key] = request.GET[key] in ("1", "on", "true")
    if request.GET.get("doubtful") in ("ssim", "classifier", "either", "none"):
        initial["doubtful"] = request.GET["doubtful"]
    return initial


def _jobs_context(request, bound=None):
    curator = user_is_curator(request.user)
    forms = []
    open_form = bound.key if bound is not None else request.GET.get("start", "")
    if curator:
        names = dataset_names()
        chosen = request.GET.get("dataset") or dataset_newest()  # the dataset the page was opened for
        for key, form_class in START_FORMS.items():
            if bound is not None and bound.key == key:
                forms.append(bound)
                continue
            extra = {"initial": _retrain_initial(request)} if key == RetrainForm.key else {}
            forms.append(form_class(prefix=key, datasets=names, dataset=chosen, **extra))
    # The retrain form's preview is counted here only when that form is open; a closed one loads it when opened.
    retrain = next((f for f in forms if f.key == RetrainForm.key), None)
    preview = retrain.preview() if retrain is not None and open_form == RetrainForm.key else None
    return {"page": job_selectors.jobs_page(page=request.GET.get("page") or 1), "curator": curator, "forms": forms,
            "workers": workers_alive(), "open_form": open_form, "retrain_preview": preview}


@login_required
@require_GET
def jobs(request):
    return render(request, "curation/pages/jobs.html", _jobs_context(request))


@curator_required
@require_GET
def retrain_preview(request):
    """The retrain form's preview for its current choices (`retrain-*` fields, as the form sends them): the fragment
    htmx swaps in when a choice changes."""
    form = RetrainForm(request.GET, prefix=RetrainForm.key)
    return render(request, "curation/pages/_retrain_preview.html", {"form": form, "retrain_preview": form.preview()})


@curator_required
@require_POST
def job_start(request, key):
    form_class = START_FORMS.get(key)
    if form_class is None:
        raise Http404(f"no start form {key!r}")
    form = form_class(request.POST, prefix=key)
    action = request.POST.get("action", "start")
    if key == RetrainForm.key and action == "preview":  # the preview without script: nothing is queued
        return render(request, "curation/pages/jobs.html", _jobs_context(request, bound=form),
                      status=200 if form.is_valid() else 400)
    if form.is_valid():
        seeds = form.cleaned_data.get("seeds")
        chain = key == RetrainForm.key and action == "generate_retrain"
        try:
            if chain:  # generate with the dataset's generators, then this retrain (classifier/generate_retrain_*)
                if seeds:
                    raise JobParamsError("“Generate, then retrain” starts one run: leave Seeds empty")
                job = job_enqueue(kind="generate_retrain", params=form.chain_params(), user=request.user)
            elif key == RetrainForm.key and _blocked(form):
                raise JobParamsError(_blocked(form))
            elif seeds:  # the retrain form's run group: K jobs, all or none
                jobs = seed_jobs_enqueue(form.params(), seeds, user=request.user)
                job = jobs[0]
            else:
                job = job_enqueue(kind=form.kind, params=form.params(), user=request.user)
        except JobParamsError as exc:
            form.add_error(None, str(exc))
        else:
            if chain:
                messages.success(request, f"Job {job.pk} queued: it generates images, then retrains (the retrain "
                                          f"starts only when the generation succeeds).")
            elif seeds:
                messages.success(request, f"Jobs {', '.join(str(j.pk) for j in jobs)} ({job.kind}, {seeds} seeds) "
                                          f"queued.")
            else:
                messages.success(request, f"Job {job.pk} ({job.kind}) queued.")
            return redirect(f"{reverse('jobs')}#job-{job.pk}")
    return render(request, "curation/pages/jobs.html", _jobs_context(request, bound=form), status=400)


def _blocked(form):
    """The page's words for why the retrain cannot start as chosen (augmented without generated images), or ""."""
    preview = form.preview()
    problem = next((p for p in (preview or {}).get("problems", []) if p["code"] == "no_generated"), None)
    return problem["text"] if problem else ""


def _row(request, job_id):
    try:
        job = job_selectors.job_for_row(job_id=job_id)
    except JobNotFound as exc:
        raise Http404(str(exc)) from None
    html = render_to_string("curation/pages/job_row.html", {"job": job, "curator": user_is_curator(request.user)},
                            request=request)
    if job.is_finished and request.htmx:
        # htmx stops polling on 286 and still swaps the answer in (the finished row, without its trigger).
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


@login_required
@require_GET
def job_row(request, job_id):
    return _row(request, job_id)


@curator_required
@require_POST
def job_cancel_view(request, job_id):
    try:
        job = job_cancel(job_id=job_id)
    except Job.DoesNotExist:
        raise Http404(f"no job {job_id}") from None
    if request.htmx:
        return _row(request, job_id)
    messages.success(request, f"Job {job.pk}: {job.message}.")
    return redirect(f"{reverse('jobs')}#job-{job.pk}")


# Datasets, runs, generators


@login_required
@require_GET
def dataset_page(request, name):
    dataset = _dataset_or_404(name)
    return render(request, "curation/pages/dataset.html", _dataset_context(request, dataset))


@login_required
@require_GET
def dataset_health(request, name):
    dataset = _dataset_or_404(name)
    return render(request, "curation/pages/health.html",
                  {"dataset": dataset, "r": dataset_health_report(dataset=dataset)})


def _dataset_context(request, dataset, *, settings_form=None, guidelines_form=None, rescore_form=None,
                     consensus_form=None, audit_form=None, queue_model_form=None):
    try:
        precision = float(request.GET.get("precision") or 0.9)
    except ValueError:
        precision = 0.9
    if math.isnan(precision):  # "nan" would pass both bounds below ("inf" and "1e999" become 1.0 there)
        precision = 0.9
    precision = min(max(precision, 0.01), 1.0)
    agreement = dataset_agreement(dataset)
    calibration = threshold_calibration(dataset=dataset, precision=precision)
    curator = user_is_curator(request.user)
    guidelines = dataset.guidelines or {}
    bands = relabel_calibration(dataset)
    queue_model = dataset_selectors.dataset_queue_model(dataset=dataset)
    overview = dataset_selectors.dataset_overview(dataset=dataset)
    return {
        "dataset": dataset, "overview": overview, "precision": precision,
        # The decided images, given against reviewed label, each cell linked to its images in the grid.
        "review_confusion": linked_matrix(dataset, overview["confusion"]),
        "agreement": dataset_selectors.agreement_summary(agreement),
        "calibration": dataset_selectors.calibration_summary(calibration),
        "runs": dataset_selectors.dataset_recent_runs(dataset=dataset),
        "jobs": dataset_selectors.dataset_recent_jobs(dataset=dataset),
        "guidelines": [(name, guidelines[name]) for name in CLASSES if guidelines.get(name)],
        "curator": curator,
        "settings_form": settings_form or ReviewSettingsForm(initial={"reviews_required": dataset.reviews_required}),
        "guidelines_form": guidelines_form or GuidelinesForm(dataset=dataset),
        # Shown only where a truth file was registered (curation/truth.py); no signal reads it.
        "known_truth": known_truth(dataset=dataset),
        # Shown once the classifier has suggested another label for some scored train image.
        "relabel_calibration": bands if any(b["reviewed"] or b["unreviewed"] for b in bands) else None,
        "relabel_min_reviewed": MIN_REVIEWED,
        "leaks": dataset_leaks(dataset),
        "queue_order": dataset_selectors.queue_order(dataset=dataset),
        "rescore_form": rescore_form or RescoreEveryForm(initial={"rescore_every": dataset.rescore_every or ""}),
        "consensus_form": consensus_form or ConsensusThresholdForm(initial={
            "consensus_threshold": "" if dataset.consensus_threshold is None else dataset.consensus_threshold}),
        "crowdlab": dataset_crowdlab(dataset) if dataset.reviews_required > 1 else None,
        "audit_form": audit_form or AuditShareForm(initial={"audit_share": dataset.audit_share}),
        "audit": dataset_selectors.audit_summary(dataset_audit_estimates(dataset)),
        "queue_model": queue_model,
        "queue_model_form": queue_model_form or QueueModelForm(
            imported=queue_model["choices"], initial={"queue_run": str(dataset.queue_run_id or "")}),
        "predictions_form": ImportPredictionsForm(prefix=ImportPredictionsForm.key, datasets=[dataset.name],
                                                  dataset=dataset.name) if curator else None,
    }


def _dataset_setting(request, name, *, form_class, context_key, field, setter, said, anchor):
    """A curator's POST of one dataset setting: the form judges the value (400 with the page and the form's error),
    `setter(dataset_id, value)` stores it, `said(dataset, value)` is the message, and the page opens at `anchor`."""
    dataset = _dataset_or_404(name)
    form = form_class(request.POST)
    if not form.is_valid():
        return render(request, "curation/pages/dataset.html",
                      _dataset_context(request, dataset, **{context_key: form}), status=400)
    value = setter(dataset.pk, form.cleaned_data[field])
    messages.success(request, said(dataset, value))
    return redirect(f"{reverse('dataset', args=[dataset.name])}#{anchor}")


@curator_required
@require_POST
def dataset_rescore_every(request, name):
    return _dataset_setting(
        request, name, form_class=RescoreEveryForm, context_key="rescore_form", field="rescore_every",
        setter=lambda pk, v: dataset_rescore_every_set(dataset_id=pk, rescore_every=v), anchor="rescore-every",
        said=lambda ds, v: f"{ds.name}: the queue is rescored after every {v} decisions from now on." if v
        else f"{ds.name}: review rounds off; the queue is rescored only when asked.")


@curator_required
@require_POST
def dataset_consensus_threshold(request, name):
    return _dataset_setting(
        request, name, form_class=ConsensusThresholdForm, context_key="consensus_form", field="consensus_threshold",
        setter=lambda pk, v: dataset_consensus_threshold_set(dataset_id=pk, consensus_threshold=v),
        anchor="consensus-threshold",
        said=lambda ds, v: f"{ds.name}: differing votes apply CROWDLAB's consensus when its quality is at least "
                           f"{v:.2f}." if v is not None
        else f"{ds.name}: consensus threshold off; only unanimous votes apply.")


@curator_required
@require_POST
def dataset_audit_share(request, name):
    return _dataset_setting(
        request, name, form_class=AuditShareForm, context_key="audit_form", field="audit_share",
        setter=lambda pk, v: dataset_audit_share_set(dataset_id=pk, audit_share=v), anchor="audit",
        said=lambda ds, v: f"{ds.name}: {100 * v:g} % of the cards served are random audit draws from now on." if v
        else f"{ds.name}: the random audit is off.")


@curator_required
@require_POST
def dataset_queue_model(request, name):
    dataset = _dataset_or_404(name)
    choices = dataset_selectors.dataset_queue_model(dataset=dataset)["choices"]
    form = QueueModelForm(request.POST, imported=choices)
    if form.is_valid():
        try:
            value = dataset_queue_run_set(dataset_id=dataset.pk, queue_run=form.cleaned_data["queue_run"])
        except ValueError as exc:
            form.add_error(None, f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        else:
            which = f"imported model {value}" if value else "the latest product run"
            messages.success(request, f"{dataset.name}: the queue is fed by {which} from the next scoring; score "
                                      f"again to reorder it now.")
            return redirect(f"{reverse('dataset', args=[dataset.name])}#queue-model")
    return render(request, "curation/pages/dataset.html",
                  _dataset_context(request, dataset, queue_model_form=form), status=400)


@curator_required
@require_POST
def dataset_review_settings(request, name):
    return _dataset_setting(
        request, name, form_class=ReviewSettingsForm, context_key="settings_form", field="reviews_required",
        setter=lambda pk, v: dataset_reviews_required_set(dataset_id=pk, reviews_required=v), anchor="settings",
        said=lambda ds, v: f"{ds.name}: {v} review{'s' if v != 1 else ''} per image from now on.")


@curator_required
@require_POST
def dataset_guidelines(request, name):
    dataset = _dataset_or_404(name)
    form = GuidelinesForm(request.POST, dataset=dataset)
    if form.is_valid():
        try:
            dataset_guidelines_set(dataset_id=dataset.pk, guidelines=form.cleaned_data["submitted"],
                                   seen=form.cleaned_data["seen"])
        except GuidelinesConflict as exc:
            # Keep the curator's text in the form, show what was saved meanwhile, and let a second save (made after
            # seeing it) go through: the form now says it has seen the saved guidelines.
            dataset.refresh_from_db()
            saved = dataset.guidelines or {}
            data = request.POST.copy()
            data["seen"] = json.dumps(saved, sort_keys=True)
            form = GuidelinesForm(data, dataset=dataset)
            form.is_valid()
            now = "; ".join(f"{c}: “{saved.get(c, '')}”" for c in exc.classes)
            form.add_error(None, f"{str(exc)[:1].upper()}{str(exc)[1:]}. Saved now: {now}.")
        except ValueError as exc:
            form.add_error(None, f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        else:
            messages.success(request, f"{dataset.name}: guidelines saved; reviewers see them on the review card.")
            return redirect(f"{reverse('dataset', args=[dataset.name])}#settings")
    return render(request, "curation/pages/dataset.html",
                  _dataset_context(request, dataset, guidelines_form=form), status=400)


@login_required
@require_GET
def runs_page(request, name):
    dataset = _dataset_or_404(name)
    return render(request, "curation/pages/runs.html",
                  {"dataset": dataset, "runs": run_selectors.dataset_runs(dataset=dataset)})


@login_required
@require_GET
def runs_compare(request):
    values = request.GET.getlist("ids")
    try:
        ids = run_selectors.parse_run_ids(values)
        if len(values) > 1:  # the runs page's checkboxes: the oldest ticked run is the baseline
            ids.sort()
        comparison = run_selectors.runs_compare(run_ids=ids)
    except run_selectors.CompareError as exc:
        return render(request, "curation/pages/compare.html", {"error": str(exc)}, status=400)
    return render(request, "curation/pages/compare.html", {"c": comparison, "classes": CLASSES})


@login_required
@require_GET
def generators_page(request, name):
    dataset = _dataset_or_404(name)
    return render(request, "curation/pages/generators.html", _generators_context(request, dataset))


def _generators_context(request, dataset, form_errors=None):
    gans = gan_selectors.dataset_gans(dataset=dataset)
    for g in gans:
        shown = request.GET.get(f"epoch{g['gan'].pk}")
        epoch = int(shown) if shown and shown.isdigit() and int(shown) in g["samples"] else None
        g["shown_epoch"] = epoch or (max(g["samples"]) if g["samples"] else None)
        g["error"] = (form_errors or {}).get(g["gan"].pk)
    return {"dataset": dataset, "gans": gans, "pairs": gan_selectors.pair_choices(gans),
            "curator": user_is_curator(request.user)}


@curator_required
@require_POST
def gan_epoch(request, gan_id):
    try:
        gan = GanModel.objects.select_related("dataset").get(pk=gan_id)
    except GanModel.DoesNotExist:
        raise Http404(f"no CycleGAN {gan_id}") from None
    form = GanEpochForm(request.POST)
    error = None
    if not form.is_valid():
        error = form_error_text(form)
    else:
        try:
            gan_choose_epoch(gan_id=gan.pk, epoch=form.cleaned_data["epoch"])
        except EpochNotSaved as exc:
            error = str(exc)
    if error:
        return render(request, "curation/pages/generators.html",
                      _generators_context(request, gan.dataset, {gan.pk: error}), status=400)
    epoch = form.cleaned_data["epoch"]
    pair = f"{CLASSES[gan.source_label]} ↔ {CLASSES[gan.target_label]}"
    messages.success(request, f"CycleGAN {gan.pk}: scoring now uses "
                              + (f"the generators of epoch {epoch}" if epoch else "the last epoch's generators")
                              + f" of this CycleGAN for {pair}, as do the review card and generation, from the "
                                f"next scoring on.")
    return redirect(f"{reverse('dataset_generators', args=[gan.dataset.name])}#gan-{gan.pk}")
