"""Who may do what. Curators (the "curators" group, or staff) also start and cancel jobs and manage datasets; any
other signed-in user is a reviewer, who reads and decides."""

CURATORS_GROUP = "curators"


def user_is_curator(user):
    if not user or not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return user.groups.filter(name=CURATORS_GROUP).exists()
