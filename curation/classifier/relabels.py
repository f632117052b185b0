"""Review-calibrated relabels: where reviewers have shown that the classifier's suggested label is usually right,
a retrain may train the unreviewed images there on the suggestion.

The reviewers' decisions measure, by suspicion band (suspicion >= t, for each t in BANDS), how often the
classifier's suggested label was the one they chose: over the reviewed train images whose suggestion differs from
the label they came with, the share a reviewer relabelled to exactly that suggestion (a confirm or an exclude
says the suggestion was not the right label). Each band is also measured alone, as the stratum between its
threshold and the next one up. A retrain given a precision target takes the lowest threshold from which every
stratum up has at least MIN_REVIEWED decisions and reaches the target, and trains the unreviewed images above it on
the suggested label.

Why strata and not the bands alone: reviewers working down the queue decide only its top, so every band below the
top holds the same decisions, and a band at 0.5 would borrow the top decile's precision for thousands of unreviewed
images far below it, whose suggestions are right much less often. A precision is used only where reviewers looked.

That is a training target only: the stored label never changes except through people. The run's snapshot records
each image's stored label and the target it trained on (curation/classifier/selection.py).
"""
from django.db.models import Count, F, Q

from curation.models import Image

BANDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# Fewer decisions than this in a band make a precision that a handful more would overturn.
MIN_REVIEWED = 20
REVIEWED = (Image.Status.CONFIRMED, Image.Status.RELABELLED, Image.Status.EXCLUDED)


class RelabelTargetError(ValueError):
    """A precision target outside (0, 1]; the message names it."""


def check_precision_target(value):
    """The target as a float, or None when none is given; RelabelTargetError names a bad one."""
    if value in (None, ""):
        return None
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise RelabelTargetError(f"relabel precision must be a number in (0, 1], not {value!r}") from None
    if not 0 < target <= 1:
        raise RelabelTargetError(f"relabel precision must be in (0, 1] (a share of reviewed decisions), not {value}")
    return target


def _disagreeing(dataset):
    """Train images with a score and a classifier suggestion other than the label they came with."""
    return (Image.objects.filter(dataset=dataset, split=Image.Split.TRAIN, suspicion__isnull=False,
                                 classifier_suggested_label__isnull=False)
            .exclude(classifier_suggested_label=F("original_label")))


def relabel_calibration(dataset):
    """[{threshold, reviewed, chose_suggested, precision, unreviewed}] for each band, in one query."""
    counts = {}
    for k, t in enumerate(BANDS):
        band = Q(suspicion__gte=t)
        counts[f"reviewed_{k}"] = Count("id", filter=band & Q(status__in=REVIEWED))
        counts[f"chose_{k}"] = Count("id", filter=band & Q(status=Image.Status.RELABELLED,
                                                          label=F("classifier_suggested_label")))
        counts[f"unreviewed_{k}"] = Count("id", filter=band & Q(status=Image.Status.UNREVIEWED))
    got = _disagreeing(dataset).aggregate(**counts)
    bands = []
    for k, t in enumerate(BANDS):
        reviewed, chose = got[f"reviewed_{k}"], got[f"chose_{k}"]
        # The stratum [t, next threshold): this band less the one above it.
        alone = reviewed - got.get(f"reviewed_{k + 1}", 0)
        alone_chose = chose - got.get(f"chose_{k + 1}", 0)
        bands.append({"threshold": t, "reviewed": reviewed, "chose_suggested": chose,
                      "precision": chose / reviewed if reviewed else None, "unreviewed": got[f"unreviewed_{k}"],
                      "stratum_reviewed": alone, "stratum_precision": alone_chose / alone if alone else None})
    return bands


def _stratum_ok(band, precision):
    return band["stratum_reviewed"] >= MIN_REVIEWED and band["stratum_precision"] >= precision


def relabel_rule(dataset, precision, calibration=None):
    """What a precision target does on this dataset now: {target, threshold (None: no band qualifies), images
    (unreviewed images it trains on their suggestion), band (its calibration row), reason (when none)}."""
    calibration = relabel_calibration(dataset) if calibration is None else calibration
    for k, band in enumerate(calibration):
        if all(_stratum_ok(b, precision) for b in calibration[k:]):
            return {"target": precision, "threshold": band["threshold"], "images": band["unreviewed"], "band": band,
                    "reason": None}
    top = calibration[-1]  # no threshold qualifies, so the top stratum, which every rule reaches, fails
    if not any(b["stratum_reviewed"] >= MIN_REVIEWED for b in calibration):
        reason = (f"no suspicion band has {MIN_REVIEWED} reviewed images whose suggestion differs from their label "
                  f"yet, so there is no measured precision to trust")
    elif top["stratum_reviewed"] < MIN_REVIEWED:
        reason = (f"the top band, suspicion >= {top['threshold']}, has {top['stratum_reviewed']} reviewed images "
                  f"whose suggestion differs from their label, fewer than the {MIN_REVIEWED} every band a rule "
                  f"reaches needs")
    else:
        reason = (f"no band reaches {precision:.0%}: at suspicion >= {top['threshold']} reviewers chose the "
                  f"suggestion {top['stratum_precision']:.0%} of {top['stratum_reviewed']} times")
    return {"target": precision, "threshold": None, "images": 0, "band": None, "reason": reason}


def describe_band(band):
    """One sentence for a page or a command: what reviewers did above one suspicion threshold."""
    if not band["reviewed"]:
        return (f"above suspicion {band['threshold']}: no reviewed image yet; {band['unreviewed']:,} unreviewed "
                f"images there")
    return (f"above suspicion {band['threshold']} reviewers chose the suggested label {band['precision']:.0%} of "
            f"the time ({band['reviewed']:,} reviewed); {band['unreviewed']:,} unreviewed images there")


def describe_rule(rule):
    if rule["threshold"] is None:
        return f"relabels at {rule['target']:.0%} precision: none ({rule['reason']})"
    return (f"relabels at {rule['target']:.0%} precision: {rule['images']:,} unreviewed images above suspicion "
            f"{rule['threshold']} train on the classifier's suggested label ({describe_band(rule['band'])})")
