"""Helpers shared by the site's forms and the views that report on them."""


def form_error_text(form):
    """Every error of a bound, invalid form in one line, for a message on the page."""
    return "; ".join(error for errors in form.errors.values() for error in errors)
