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


class ThrottledLoginView(auth_views.LoginView):
    """Django's log-in form with a per-address limit on attempts (the same "login" rate as the API's token
    endpoint), so that passwords cannot be guessed at full speed."""

    def post(self, request, *args, **kwargs):
        throttle = LoginThrottle()
        if not throttle.allow_request(request, self):
            wait = int(throttle.wait() or 1)
            # An unbound form: a bound one would check the password while refusing to.
            message = f"Too many log-in attempts from your address; try again in {wait} seconds."
            response = self.render_to_response(self.get_context_data(form=self.form_class(request), throttled=message))
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)
