from django.urls import path

from curation.web import map_views, views

urlpatterns = [
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/retrain-preview/", views.retrain_preview, name="retrain_preview"),
    path("jobs/start/<slug:key>/", views.job_start, name="job_start"),
    path("jobs/<int:job_id>/row/", views.job_row, name="job_row"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="job_cancel"),
    path("datasets/<str:name>/", views.dataset_page, name="dataset"),
    path("datasets/<str:name>/review-settings/", views.dataset_review_settings, name="dataset_review_settings"),
    path("datasets/<str:name>/rescore-every/", views.dataset_rescore_every, name="dataset_rescore_every"),
    path("datasets/<str:name>/consensus-threshold/", views.dataset_consensus_threshold,
         name="dataset_consensus_threshold"),
    path("datasets/<str:name>/audit-share/", views.dataset_audit_share, name="dataset_audit_share"),
    path("datasets/<str:name>/guidelines/", views.dataset_guidelines, name="dataset_guidelines"),
    path("datasets/<str:name>/queue-model/", views.dataset_queue_model, name="dataset_queue_model"),
    path("datasets/<str:name>/health/", views.dataset_health, name="dataset_health"),
    path("datasets/<str:name>/map/", map_views.dataset_map, name="dataset_map"),
    path("datasets/<str:name>/map/image/<int:image_id>/", map_views.dataset_map_image, name="dataset_map_image"),
    path("datasets/<str:name>/runs/", views.runs_page, name="dataset_runs"),
    path("datasets/<str:name>/generators/", views.generators_page, name="dataset_generators"),
    path("runs/compare/", views.runs_compare, name="runs_compare"),
    path("gans/<int:gan_id>/epoch/", views.gan_epoch, name="gan_epoch"),
]
