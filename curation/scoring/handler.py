"""The score_ambiguity job: transformation SSIMs for every new (image, generator), their normalisation, cleanlab's
signals from the latest out-of-fold probabilities, the SSIM flags, and the fused suspicion.

Scores cover the train split (the images a reduced retrain may drop); val and test stay as imported. Rows are
upserted on (image, generator, direction), so a second run computes only what is new and a killed run re-run
duplicates nothing. The SSIMs are computed in chunk jobs that several GPU workers share (chunk_handler.py; the
parent's side, chunks_plan and chunks_run, is here).

The worker's side: only the job runner imports it (the registry names it). The parameters are
curation/scoring/params.py."""
from pathlib import Path

import numpy as np
from cleanlab import Datalab
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from curation.classifier.features import read_oof_features
from curation.db import update_rows
from curation.gans.data import domain_items
from curation.gans.snapshots import (
    DIRECTIONS,
    direction_labels,
    direction_name,
    generator_snapshot,
    pair_generators,
    snapshot_quality,
)
from curation.models import Image, TransformScore
from curation.review.audit import audit_sample_decided
from curation.scoring import fusion
from curation.scoring.fusion import LABEL_QUALITY
from curation.selectors import dataset_queue_run, dataset_resolve
from gan.scoring import standardise
from training.labels import CLASSES

# Neighbours cleanlab's Datalab reads per image (its default) for the label, outlier and near-duplicate checks.
DATALAB_K = 10
DATALAB_FIELDS = ["datalab_label_quality", "datalab_label_issue", "datalab_outlier_score", "datalab_outlier",
                  "datalab_near_duplicate_score", "datalab_near_duplicates"]
DATALAB_NONE = {"datalab_label_quality": None, "datalab_label_issue": False, "datalab_outlier_score": None,
                "datalab_outlier": False, "datalab_near_duplicate_score": None, "datalab_near_duplicates": []}


def score_ambiguity_job(ctx):
    p = ctx.params
    dataset = dataset_resolve(name=p["dataset"])
    gans = pair_generators(dataset)  # per pair, the CycleGAN a curator chose, else the newest
    # The SSIMs, in chunk jobs that any GPU worker takes and this job takes too (curation/scoring/chunk_handler.py).
    chunks = chunks_plan(ctx, dataset, gans, chunk_images=p.get("chunk_images") or settings.SCORE_CHUNK_IMAGES)
    computed = chunks_run(ctx, chunks, share=0.8)
    ctx.progress(0.8, "standardising SSIMs per generator", force=True)
    _standardise(dataset, gans)
    ctx.progress(0.85, "classifier signals", force=True)
    classifier = _classifier_signals(dataset)
    ctx.progress(0.9, "flags and suspicion", force=True)
    summary = _summarise(dataset, gans, p["threshold"], p["class_thresholds"], classifier)
    return {"dataset": dataset.name, "generators": [f"{g.pk}:{CLASSES[g.source_label]}<->{CLASSES[g.target_label]}"
                                                    for g in gans],
            "ssim_computed": computed, "chunks": len(chunks), **summary}


def current_scores(dataset, gans):
    """The TransformScore rows that still describe their image: from the latest CycleGAN of each pair, at the
    snapshot scoring uses, by a generator leaving the image's current label, on a train image nobody excluded.
    Rows of an older CycleGAN, of an earlier snapshot, or of the label an image had before a reviewer changed it
    stay stored (the review card shows them) but say nothing about the label it has now."""
    return _scores_leaving(dataset, gans, "label").exclude(image__status=Image.Status.EXCLUDED)


def scores_as_reviewers_saw(dataset, gans):
    """The TransformScore rows of the reviewed train images (excluded ones too) by a generator leaving the label
    they were imported with, the label the queue judged when a reviewer decided. Their z is the one standardising
    gave them while that label was current."""
    return _scores_leaving(dataset, gans, "original_label").exclude(image__status=Image.Status.UNREVIEWED)


def _scores_leaving(dataset, gans, label_field):
    match = Q(pk__in=[])
    for gan in gans:
        _, epoch = generator_snapshot(gan)
        for direction in DIRECTIONS:
            source, _ = direction_labels(gan, direction)
            match |= Q(gan=gan, direction=direction, epoch=epoch, **{f"image__{label_field}": source})
    return TransformScore.objects.filter(match, image__dataset=dataset, image__split=Image.Split.TRAIN)


def _standardise(dataset, gans):
    current = current_scores(dataset, gans)
    for gan in gans:
        for direction in DIRECTIONS:
            rows = list(current.filter(gan=gan, direction=direction).order_by("id").only("id", "ssim", "ssim_into"))
            contrast = [r.ssim - r.ssim_into if r.ssim_into is not None else r.ssim for r in rows]
            for row, z in zip(rows, standardise(contrast)):
                row.z = float(z)
            with transaction.atomic():
                update_rows(TransformScore, rows, ["z"])


def _classifier_signals(dataset):
    """{"run": the run read, "by_image": {image id: (label quality, issue, suggested label)} against the current
    labels, "datalab": {image id: {Image field: value}}, and for the images a reviewer relabelled, against the label
    they were imported with: "as_imported" {image id: (label quality, issue)} and "datalab_as_imported" {image id:
    Datalab's label quality}} from the model that feeds the queue (dataset_queue_run: the latest run with out-of-fold
    probabilities, or the imported predictions a curator picked; both keep the same oof.npz and embeddings files)."""
    run = dataset_queue_run(dataset_id=dataset.pk)
    if run is None:
        return {"run": None, "by_image": {}, "datalab": {}, "as_imported": {}, "datalab_as_imported": {}}
    data = np.load(Path(settings.MEDIA_ROOT) / run.oof_file)
    ids, probs = data["ids"], data["probs"].astype(np.float64)
    current = {i: (label, imported) for i, label, imported in
               Image.objects.filter(id__in=ids.tolist()).values_list("id", "label", "original_label")}
    keep = np.array([i in current for i in ids.tolist()])
    ids, probs = ids[keep], probs[keep]
    labels = np.array([current[i][0] for i in ids.tolist()])  # scored against the labels as they are now
    imported = np.array([current[i][1] for i in ids.tolist()])
    probs = probs / probs.sum(1, keepdims=True)
    quality = get_label_quality_scores(labels, probs, method=LABEL_QUALITY)
    # n_jobs=1: a Celery prefork worker is a daemonic process, which may not start the pool cleanlab would.
    issues = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    datalab, datalab_imported = _datalab_signals(run, ids, labels, imported)
    # The same signals against the imported labels, for the relabelled images only: what the fusion's fit on
    # reviews must read (_fit_on_reviews).
    as_imported = {}
    relabelled = labels != imported
    if relabelled.any():
        quality_imported = get_label_quality_scores(imported[relabelled], probs[relabelled], method=LABEL_QUALITY)
        issues_imported = find_label_issues(imported, probs, filter_by="prune_by_noise_rate", n_jobs=1)[relabelled]
        as_imported = {int(i): (float(q), bool(f))
                       for i, q, f in zip(ids[relabelled], quality_imported, issues_imported)}
    return {"run": run.pk, "by_image": {int(i): (float(q), bool(f), int(s))
                                        for i, q, f, s in zip(ids, quality, issues, probs.argmax(1))},
            "datalab": datalab, "as_imported": as_imported, "datalab_as_imported": datalab_imported}


def _datalab_signals(run, ids, labels, imported):
    """({image id: {Image field: value}} of cleanlab's Datalab on `run`'s out-of-fold embeddings (curation/classifier/
    features.py) of the images `ids` under their current `labels`, {image id: Datalab's label score under the
    `imported` label} for the images whose two labels differ); ({}, {}) for a run without embeddings.

    Datalab reads the embeddings' k nearest neighbours (cosine) for three checks: a label issue when an image's
    neighbours mostly carry another label (its label check works from the features only when it is given no
    probabilities: given both, it would judge the out-of-fold probabilities again, which LABEL_QUALITY already
    does); an outlier score from the mean distance to them; and near-duplicate sets of images much closer to each
    other than the median nearest pair. Scores are in [0, 1], low = more of an issue."""
    read = read_oof_features(run)
    if read is None or len(ids) <= DATALAB_K + 1:
        return {}, {}
    stored_ids, order, features = read
    at = np.minimum(np.searchsorted(stored_ids, ids), len(stored_ids) - 1)
    if not np.array_equal(stored_ids[at], ids):  # every id is a row of oof.npz, so of its embeddings
        return {}, {}
    rows = order[at]
    embedded = np.asarray(features[rows], dtype=np.float32)
    # n_jobs=1: as find_label_issues above.
    label_check = {"k": DATALAB_K, "clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}}
    lab = Datalab(data={"label": np.asarray(labels)}, label_name="label", verbosity=0)
    lab.find_issues(features=embedded, issue_types={
        "label": label_check, "outlier": {"k": DATALAB_K}, "near_duplicate": {"k": DATALAB_K},
    })
    found = lab.get_issues()
    sets = lab.get_issues("near_duplicate")["near_duplicate_sets"]
    as_imported = {}
    relabelled = np.flatnonzero(np.asarray(labels) != np.asarray(imported))
    if len(relabelled):  # the label check again under the imported labels, on the same neighbours
        again = Datalab(data={"label": np.asarray(imported)}, label_name="label", verbosity=0)
        again.find_issues(features=embedded, knn_graph=lab.get_info("statistics")["weighted_knn_graph"],
                          issue_types={"label": label_check})
        score = again.get_issues()["label_score"]
        as_imported = {int(ids[r]): float(score.iat[r]) for r in relabelled}
    return {int(image_id): {
        "datalab_label_quality": float(found["label_score"].iat[r]),
        "datalab_label_issue": bool(found["is_label_issue"].iat[r]),
        "datalab_outlier_score": float(found["outlier_score"].iat[r]),
        "datalab_outlier": bool(found["is_outlier_issue"].iat[r]),
        "datalab_near_duplicate_score": float(found["near_duplicate_score"].iat[r]),
        "datalab_near_duplicates": sorted(int(ids[j]) for j in sets.iat[r]),
    } for r, image_id in enumerate(ids.tolist())}, as_imported


def _best_gan(rows, works):
    """{image id: {"raw": highest SSIM, "z": highest standardised contrast, "suggest": that generator's target,
    "trusted": whether that generator works}} from TransformScore rows."""
    best = {}
    for image_id, ssim_value, z, target, gan_id, direction in rows.values_list(
            "image_id", "ssim", "z", "target_label", "gan_id", "direction"):
        b = best.setdefault(image_id, {"raw": -1.0, "z": -np.inf, "suggest": None, "trusted": True})
        b["raw"] = max(b["raw"], ssim_value)
        if z is not None and z > b["z"]:
            b["z"], b["suggest"] = z, target
            b["trusted"] = works.get((gan_id, direction)) is not False  # not measured: trusted, as before
    return best


def _signals(images, best, by_cl, datalab):
    """Per image of `images`: (label quality, GAN z, highest SSIM, classifier issue, GAN trusted, Datalab label
    quality), NaN / False / True where missing."""
    lq = np.array([by_cl[i.id][0] if i.id in by_cl else np.nan for i in images])
    gz = np.array([best[i.id]["z"] if i.id in best else np.nan for i in images])
    raw = np.array([best[i.id]["raw"] if i.id in best else np.nan for i in images])
    issue = np.array([by_cl[i.id][1] if i.id in by_cl else False for i in images])
    trusted = np.array([best[i.id]["trusted"] if i.id in best else True for i in images])
    dl = np.array([np.nan if datalab.get(i.id) is None else datalab[i.id] for i in images], float)
    return lq, gz, raw, issue, trusted, dl


def _summarise(dataset, gans, threshold, class_thresholds, classifier):
    works, names = _generators_work(gans)
    best = _best_gan(current_scores(dataset, gans), works)
    images = list(Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN)
                  .only("id", "label", "original_label", "status"))
    by_cl = classifier["by_image"]
    datalab_quality = {i: d["datalab_label_quality"] for i, d in classifier["datalab"].items()}
    lq, gz, raw, issue, trusted, dl = _signals(images, best, by_cl, datalab_quality)
    default = fusion.default_suspicion(lq, gz, trusted)
    # Datalab's label score from the embeddings' neighbours: fusion takes it only as its rule allows (a candidate,
    # and an input of the logistic fit, used when it beats every single signal on reviewed images).
    dl = dl if np.isfinite(dl).any() else None
    choice, model, report = _fit_on_reviews(dataset, gans, images, works, best, classifier, datalab_quality,
                                            dl is not None)
    if choice == "logistic":
        suspicion = model.predict_proba(fusion.features(lq, gz, raw, issue, dl))[:, 1]
    elif choice == "default":
        suspicion = default
    else:
        suspicion = {"classifier": -lq, "gan": gz, "ssim": raw, "datalab": None if dl is None else -dl}[choice]
    flag_rate = {}
    for img, a, g, s in zip(images, raw, gz, suspicion):
        limit = class_thresholds.get(CLASSES[img.label], threshold)
        img.ambiguity = None if np.isnan(a) else float(a)
        img.flagged = bool(not np.isnan(a) and a >= limit)
        img.gan_score = None if np.isnan(g) else float(g)
        img.gan_suggested_label = best.get(img.id, {}).get("suggest")
        signals = by_cl.get(img.id)
        img.label_quality = signals[0] if signals else None
        img.classifier_flagged = bool(signals and signals[1])
        img.classifier_suggested_label = signals[2] if signals else None
        img.suspicion = None if s is None or np.isnan(s) else float(s)
        for field, value in classifier["datalab"].get(img.id, DATALAB_NONE).items():
            setattr(img, field, value)
        rate = flag_rate.setdefault(CLASSES[img.label], [0, 0])
        rate[0] += img.flagged
        rate[1] += 1
    with transaction.atomic():
        update_rows(Image, images, ["ambiguity", "flagged", "gan_score", "gan_suggested_label", "label_quality",
                                    "classifier_flagged", "classifier_suggested_label", "suspicion",
                                    *DATALAB_FIELDS])
    return {
        "classifier_run": classifier["run"], "threshold": threshold, "class_thresholds": class_thresholds,
        "flag_rate_per_class": {c: round(f / n, 4) for c, (f, n) in flag_rate.items() if n},
        "flagged": int(sum(i.flagged for i in images)), "classifier_flagged": int(issue.sum()),
        "datalab": {"scored": len(classifier["datalab"]),
                    "label_issues": int(sum(i.datalab_label_issue for i in images)),
                    "outliers": int(sum(i.datalab_outlier for i in images)),
                    "near_duplicates": int(sum(bool(i.datalab_near_duplicates) for i in images))},
        "scored": len(images), "fusion": report,
        # Generators whose SSIMs the default fusion uses (True), ignores (False) or uses unchecked (None).
        "generators_working": {names[k]: w for k, w in works.items()},
    }


def _generators_work(gans):
    """{(gan id, direction): whether that generator passed its quality check at the snapshot scoring uses (None: not
    measured there)} for the latest CycleGAN of each pair, and {(gan id, direction): "source->target"} to name them."""
    works, names = {}, {}
    for gan in gans:
        _, quality = snapshot_quality(gan)
        for direction in DIRECTIONS:
            works[(gan.pk, direction)] = fusion.generator_works(quality.get(direction))
            names[(gan.pk, direction)] = direction_name(gan, direction)
    return works, names


def _fit_on_reviews(dataset, gans, images, works, best, classifier, datalab_quality, with_datalab):
    """How to order the queue from decisions: fusion.choose_from_audit on the decided train images of the random
    audit's sample once they hold enough of each outcome, else fusion.choose_from_reviews on every train image
    reviewers decided; the outcome is "the label was changed or the image excluded". Each image's signals are read
    against the label it was imported with: the label the queue judged and the reviewer saw. Read against the
    label a reviewer gave it, a relabelled image looks clean while its outcome says "changed", and a fit on that
    learns the signals backwards: at full size it ranked the unreviewed images' wrong labels at AUROC 0.21
    (docs/results.md, "Review in rounds"). Unreviewed images keep their current signals (`best`: _best_gan of
    current_scores; `datalab_quality`: {image id: Datalab's label quality}), which the default's ranks are taken
    among. The report carries the audit's counts either way (audit_decisions, audit_wrong)."""
    decided = np.array([img.status != Image.Status.UNREVIEWED for img in images], bool)
    index = np.flatnonzero(decided)
    y = np.array([images[k].status in (Image.Status.RELABELLED, Image.Status.EXCLUDED) for k in index], int)
    audit = audit_sample_decided(dataset=dataset, split=Image.Split.TRAIN)
    audit_index = np.array([k for k in index if images[k].id in audit], int)
    audit_y = np.array([audit[images[k].id] for k in audit_index], int)
    counts = {"audit_decisions": int(len(audit_y)), "audit_wrong": int(audit_y.sum())}
    from_audit = fusion.audit_enough(audit_y)
    if not from_audit and len(y) < fusion.REVIEWED_MIN:  # too few to fit: choose_from_reviews says so first
        choice, model, report = fusion.choose_from_reviews(np.empty((len(y), 0)), y, {})
        return choice, model, {**report, **counts}
    reviewed = {images[k].id for k in index}
    best_seen = {i: b for i, b in best.items() if i not in reviewed}
    best_seen.update(_best_gan(scores_as_reviewers_saw(dataset, gans), works))
    by_cl = {**classifier["by_image"], **classifier["as_imported"]}
    lq, gz, raw, issue, trusted, dl = _signals(images, best_seen, by_cl,
                                               {**datalab_quality, **classifier["datalab_as_imported"]})
    default = fusion.default_suspicion(lq, gz, trusted)

    def inputs(at):
        X = fusion.features(lq[at], gz[at], raw[at], issue[at], dl[at] if with_datalab else None)
        candidates = {"default": default[at], "classifier": -lq[at], "gan": gz[at], "ssim": raw[at]}
        if with_datalab:
            candidates["datalab"] = -dl[at]
        return X, candidates

    if from_audit:
        X, candidates = inputs(audit_index)
        choice, model, report = fusion.choose_from_audit(X, audit_y, candidates)
    else:
        X, candidates = inputs(index)
        choice, model, report = fusion.choose_from_reviews(X, y, candidates,
                                                           spread=fusion.below_median(default, decided))
    return choice, model, {**report, **counts}


# --- the parent's side of the chunks (curation/scoring/chunk_handler.py) -----------------------------------------

def chunks_plan(ctx, dataset, gans, *, chunk_images):
    """The parent's chunks: [{"id": job id, "n": images, "name": "happy->sad"}], planned once per job.

    Every train image labelled A without a score at the current snapshot of a generator leaving A, in id order,
    cut into chunks of at most chunk_images per direction. The chunk jobs and the parent's state that lists them
    commit together, so a parent re-run after a crash finds them and plans nothing twice."""
    if "chunks" in ctx.state:
        return ctx.state["chunks"]
    planned = []
    for gan in gans:
        _, epoch = generator_snapshot(gan)
        for direction in DIRECTIONS:
            source, _ = direction_labels(gan, direction)
            done = set(TransformScore.objects.filter(gan=gan, direction=direction, epoch=epoch, ssim_into__isnull=False)
                       .values_list("image_id", flat=True))
            todo = [item.id for item in domain_items(dataset, source) if item.id not in done]
            for start in range(0, len(todo), chunk_images):
                part = todo[start : start + chunk_images]
                params = {"gan": gan.pk, "direction": direction, "epoch": epoch, "ids": [part[0], part[-1]]}
                planned.append((direction_name(gan, direction), len(part), params))
    with transaction.atomic():
        chunks = []
        for name, n, params in planned:
            job = ctx.child_enqueue(kind="score_chunk", params=params)
            chunks.append({"id": job.pk, "n": n, "name": name})
        ctx.save_state({**ctx.state, "chunks": chunks})
    return chunks


def chunks_run(ctx, chunks, *, share=0.8):
    """Run the parent's chunks to the end (JobContext.children_run). Progress goes from 0 to `share` by images done.
    Returns the number of SSIMs the chunks computed."""
    results = ctx.children_run(chunks, share=share, noun="chunk", unit="images")
    return sum((result or {}).get("computed", 0) for result in results)
