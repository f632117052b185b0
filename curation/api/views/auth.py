from rest_framework.authtoken.views import ObtainAuthToken

from curation.api.throttles import LoginThrottle


class TokenLoginApi(ObtainAuthToken):
    """Exchange a user name and password for the user's API token (`Authorization: Token <key>`). Rate-limited
    per client address. `python manage.py drf_create_token USER` makes one without a password."""

    throttle_classes = [LoginThrottle]
