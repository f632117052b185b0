from django.urls import path

from curation.scoring import views

# Included at datasets/<str:name>/calibration/ by fer_site/urls.py.
urlpatterns = [
    path("", views.calibration_page, name="dataset_calibration"),
]
