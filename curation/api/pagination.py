from rest_framework.pagination import CursorPagination


class ByIdCursor(CursorPagination):
    """Stable pages over rows that change while a client pages through them (labels, statuses)."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class NewestFirstCursor(ByIdCursor):
    ordering = "-id"
    page_size = 50
