from django.urls import path

from curation.review import dispute_views, grid_views, views

urlpatterns = [
    path("", views.review_queue, name="review"),
    path("decide/", views.review_decide, name="review_decide"),
    path("undo/", views.review_undo_last, name="review_undo"),
    path("lease/", views.review_lease, name="review_lease"),
    path("grid/", grid_views.review_grid, name="review_grid"),
    path("grid/decide/", grid_views.review_grid_decide, name="review_grid_decide"),
    path("disputes/", dispute_views.review_dispute_list, name="review_disputes"),
    path("disputes/resolve/", dispute_views.review_dispute_resolve, name="review_dispute_resolve"),
]
