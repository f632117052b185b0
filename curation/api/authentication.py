"""API tokens: django-rest-knox's AuthToken, stored as a SHA-512 digest with an expiry (settings.REST_KNOX, from
FER_TOKEN_TTL_HOURS). The header stays DRF's `Authorization: Token <token>`.

Knox's own TokenAuthentication answers an expired token with the same "Invalid token." as an unknown one and deletes
it on sight. This one looks the token up by its digest (the table's primary key: one indexed query), and tells an
expired token apart, so that a script's owner reads why it stopped working and how to get a new one. Expired rows
are deleted when the user is issued a new token, or by `manage.py revoke_tokens --expired` (curation/tokens.py)."""
import binascii

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken
from rest_framework import exceptions

HOW_TO_GET_ONE = "get a new one from POST /api/auth/token/ or `python manage.py drf_create_token USERNAME`"
INVALID = f"Invalid token: it is unknown or was revoked; {HOW_TO_GET_ONE}."


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <token>` against knox's hashed tokens; 401 for unknown, revoked or expired ones."""

    def authenticate_credentials(self, token):
        try:
            digest = hash_token(token.decode("utf-8"))
        except (UnicodeDecodeError, TypeError, binascii.Error):
            raise exceptions.AuthenticationFailed(INVALID) from None
        auth_token = AuthToken.objects.filter(digest=digest).select_related("user").first()
        if auth_token is None:
            raise exceptions.AuthenticationFailed(INVALID)
        if auth_token.expiry is not None and auth_token.expiry <= timezone.now():
            when = auth_token.expiry.isoformat(timespec="seconds").replace("+00:00", "Z")
            raise exceptions.AuthenticationFailed(f"Token expired at {when}; {HOW_TO_GET_ONE}.",
                                                  code="token_expired")
        return self.validate_user(auth_token)


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: drf-spectacular's knox extension matches knox's class only, not subclasses."""

    target_class = ExpiringTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'Token-based authentication with required prefix "Token"'}
