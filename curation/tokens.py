"""API tokens (django-rest-knox's AuthToken): issue, revoke, purge. A token's string is returned once, when it is
issued; the database keeps only its SHA-512 digest, its first characters (knox's token_key) and its expiry. The
API authenticates them in curation/api/authentication.py."""
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import knox_settings


def purge_expired(user=None):
    """Delete expired tokens (one user's, or everyone's); returns how many."""
    tokens = AuthToken.objects.filter(expiry__lte=timezone.now())
    if user is not None:
        tokens = tokens.filter(user=user)
    return tokens.delete()[0]


def issue_token(user, ttl=None):
    """A new token for `user`, valid for `ttl` (a timedelta; default settings.REST_KNOX["TOKEN_TTL"], from
    FER_TOKEN_TTL_HOURS). Returns (the AuthToken row, the token string). The user's expired tokens go at the same
    time."""
    purge_expired(user)
    return AuthToken.objects.create(user=user, expiry=ttl if ttl is not None else knox_settings.TOKEN_TTL)


def revoke_tokens(user):
    """Delete every token of `user`; returns how many."""
    return AuthToken.objects.filter(user=user).delete()[0]
