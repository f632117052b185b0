from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from curation.jobs.selectors import workers_alive
from curation.selectors import dataset_summaries, jobs_recent


@login_required
def home(request):
    return render(
        request,
        "curation/home.html",
        {"datasets": dataset_summaries(), "jobs": jobs_recent(), "workers": workers_alive()},
    )


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True, "workers": len(workers_alive())})
