"""Small formatting filters and links of the browser pages."""
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from curation.roles import text_paths_hidden
from curation.web.selectors.jobs import job_duration
from training.labels import label_name

register = template.Library()


@register.filter
def paths_for(text, curator):
    """A job's message or error as the viewer may see it: whole for a curator, server paths hidden for a reviewer
    (curation.roles)."""
    return text if curator else text_paths_hidden(text)


@register.filter
def duration(job):
    """How long a job ran (or has run so far): "42 s", "3 min 05 s", "2 h 07 min"; "–" before it starts."""
    seconds = job_duration(job)
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@register.filter
def signed(value, digits=3):
    """A delta with its sign: +0.012, -0.034, 0.000; empty for None."""
    if value is None:
        return ""
    digits = int(digits)
    if abs(value) < 0.5 * 10 ** -digits:
        return f"{0:.{digits}f}"
    return f"{value:+.{digits}f}"


@register.filter
def delta_class(value):
    """"up", "down" or "" for a delta's colour."""
    if value is None or abs(value) < 5e-4:
        return ""
    return "up" if value > 0 else "down"


@register.filter
def percent(value, digits=1):
    """A share as "61.8 %"; a dash for None and for anything not a number (a missing key of a run's metrics
    reaches a template as "", which would otherwise be multiplied as text)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{100 * value:.{int(digits)}f} %"


@register.filter
def fmt(value):
    """A report cell: floats to 3 significant digits, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return value


@register.simple_tag
def review_url(dataset, run, true_code, predicted_code):
    """The review queue filtered to the test images of `run` with true label X that it predicted as Y."""
    query = urlencode({"dataset": dataset, "split": "test", "label": label_name(true_code), "run": run,
                       "predicted": label_name(predicted_code), "status": "any"})
    return f"{reverse('review')}?{query}"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None
