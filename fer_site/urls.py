from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.shortcuts import redirect
from django.urls import include, path

from curation import views
from curation.web.media import serve_media

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Pages name their icon (base.html); a browser that asks for /favicon.ico anyway gets it, not a 404 in the log.
    # Resolved per request, not at import: under the manifest storage the hashed name exists only after
    # collectstatic, and `manage.py check --deploy` imports the URLs before that.
    path("favicon.ico", lambda request: redirect(static("favicon.svg"), permanent=True)),
    path("login/", views.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("review/", include("curation.review.urls")),
    path("admin/login/", views.admin_login),  # the admin's own log-in, under the log-in limit
    path("admin/", admin.site.urls),
    path("api/", include("curation.api.urls")),
    path("datasets/<str:name>/calibration/", include("curation.scoring.urls")),
    # Media in every settings module, to signed-in users only (nginx sends the file where it is in front).
    path("media/<path:path>", serve_media, name="media"),
    path("", include("curation.web.urls")),
]
# Under /api/ errors are JSON, whatever raised them (curation/api/errors.py); elsewhere Django's pages.
handler404 = "curation.api.errors.page_not_found"
handler500 = "curation.api.errors.server_error"
