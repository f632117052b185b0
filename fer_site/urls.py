from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.static import serve

from curation import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", views.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("review/", include("curation.review.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("curation.api.urls")),
    path("datasets/<str:name>/calibration/", include("curation.scoring.urls")),
    path("", include("curation.web.urls")),
]
if settings.DEBUG:
    urlpatterns.append(path("media/<path:path>", serve, {"document_root": settings.MEDIA_ROOT}))

# Under /api/ errors are JSON, whatever raised them (curation/api/errors.py); elsewhere Django's pages.
handler404 = "curation.api.errors.page_not_found"
handler500 = "curation.api.errors.server_error"
