from django.urls import path

from curation.review import views

urlpatterns = [
    path("", views.review_queue, name="review"),
    path("decide/", views.review_decide, name="review_decide"),
    path("undo/", views.review_undo_last, name="review_undo"),
    path("lease/", views.review_lease, name="review_lease"),
]
