from rest_framework.permissions import BasePermission

from curation.roles import user_is_curator


class IsCurator(BasePermission):
    """Curators: members of the "curators" group, or staff."""

    message = "Only curators (the 'curators' group or staff) may do this."

    def has_permission(self, request, view):
        return user_is_curator(request.user)
