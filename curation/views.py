from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render

from curation.api.throttles import LoginThrottle
from curation.health import health
from curation.jobs.selectors import jobs_recent, workers_alive
from curation.selectors import dataset_summaries


@login_required
def home(request):
    return render(
        request,
        "curation/home.html",
        {"datasets": dataset_summaries(), "jobs": jobs_recent(), "workers": workers_alive()},
    )


def healthz(request):
    """The database, the broker and the cache, each reported on its own (curation/health.py); 503 if any is down.
    "workers": Celery workers seen recently (none is not an error here: the web serves without them)."""
    body = health()
    body["workers"] = len(workers_alive()) if body["database"]["ok"] else None
    return JsonResponse(body, status=200 if body["ok"] else 503)


def _login_wait(request):
    """None when this log-in attempt may go ahead (and counts it), else the seconds until the address may try again.
    One "login" count per client address (curation.addresses) for the form, the admin and the token endpoint."""
    throttle = LoginThrottle()
    if throttle.allow_request(request, None):
        return None
    return int(throttle.wait() or 1)


def _too_many(wait):
    return f"Too many log-in attempts from your address; try again in {wait} seconds."


class ThrottledLoginView(auth_views.LoginView):
    """Django's log-in form with a per-address limit on attempts (the same "login" rate as the API's token
    endpoint), so that passwords cannot be guessed at full speed."""

    def post(self, request, *args, **kwargs):
        wait = _login_wait(request)
        if wait is not None:
            # An unbound form: a bound one would check the password while refusing to.
            response = self.render_to_response(self.get_context_data(form=self.form_class(request),
                                                                     throttled=_too_many(wait)))
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)


def admin_login(request, extra_context=None):
    """The admin's log-in (admin.site.login) under the same per-address limit: a refused attempt gets the admin's
    log-in page unbound, with the message, as 429, and its password is never checked."""
    if request.method == "POST":
        wait = _login_wait(request)
        if wait is not None:
            messages.error(request, _too_many(wait))
            request.method = "GET"  # render the empty form; the POSTed password is not looked at
            response = admin.site.login(request, extra_context)
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
    return admin.site.login(request, extra_context)
