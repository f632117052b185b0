from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.urls import path, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from curation.api.views import audit, auth, datasets, images, jobs, review, runs
from curation.api.views.calibration import DatasetCalibrationApi
from curation.api.views.errors import not_found
from curation.api.views.health import DatasetHealthApi
from curation.api.views.leaks import (
    DatasetDuplicatesApi,
    DatasetExcludeLeakedTestApi,
    DatasetExcludeLeakingCopiesApi,
    DatasetLeaksApi,
)
from curation.api.views.maps import DatasetMapApi, DatasetMapSelectionApi

urlpatterns = [
    path("datasets/", datasets.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<str:name>/", datasets.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<str:name>/export.csv", datasets.DatasetExportApi.as_view(), name="api-dataset-export"),
    path("datasets/<str:name>/export-summary.json", audit.DatasetExportSummaryApi.as_view(),
         name="api-dataset-export-summary"),
    path("datasets/<str:name>/audit/", audit.DatasetAuditApi.as_view(), name="api-dataset-audit"),
    path("datasets/<str:name>/calibration/", DatasetCalibrationApi.as_view(), name="api-dataset-calibration"),
    path("datasets/<str:name>/health/", DatasetHealthApi.as_view(), name="api-dataset-health"),
    path("datasets/<str:name>/duplicates/", DatasetDuplicatesApi.as_view(), name="api-dataset-duplicates"),
    path("datasets/<str:name>/leaks/", DatasetLeaksApi.as_view(), name="api-dataset-leaks"),
    path("datasets/<str:name>/leaks/exclude-test/", DatasetExcludeLeakedTestApi.as_view(),
         name="api-dataset-leaks-exclude-test"),
    path("datasets/<str:name>/leaks/exclude-copies/", DatasetExcludeLeakingCopiesApi.as_view(),
         name="api-dataset-leaks-exclude-copies"),
    path("datasets/<str:name>/map/", DatasetMapApi.as_view(), name="api-dataset-map"),
    path("datasets/<str:name>/map/selection/", DatasetMapSelectionApi.as_view(), name="api-dataset-map-selection"),
    path("images/", images.ImageListApi.as_view(), name="api-images"),
    path("images/<int:image_id>/", images.ImageDetailApi.as_view(), name="api-image"),
    path("images/<int:image_id>/decision/", images.ImageDecisionApi.as_view(), name="api-image-decision"),
    path("review/next/", review.ReviewNextApi.as_view(), name="api-review-next"),
    path("review/undo/", review.ReviewUndoApi.as_view(), name="api-review-undo"),
    path("jobs/", jobs.JobsApi.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", jobs.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel/", jobs.JobCancelApi.as_view(), name="api-job-cancel"),
    path("runs/", runs.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", runs.RunDetailApi.as_view(), name="api-run"),
    path("auth/token/", auth.TokenLoginApi.as_view(), name="api-token"),
    path("auth/logout/", auth.TokenLogoutApi.as_view(), name="api-token-logout"),
    path("auth/logout-all/", auth.TokenLogoutAllApi.as_view(), name="api-token-logout-all"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Redoc's bundle injects <style> elements it cannot give a nonce: this one page allows inline styles (its
    # scripts stay under the site's policy).
    path("redoc/", csp_replace({"style-src": [SELF, UNSAFE_INLINE]})(SpectacularRedocView.as_view(url_name="api-schema")),
         name="api-redoc"),
    re_path(r"^.*$", not_found),
]
