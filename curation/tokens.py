"""API tokens (django-rest-knox's AuthToken): issue, revoke, purge. A token's string is returned once, when it is
issued; the database keeps only its SHA-512 digest, its first characters (knox's token_key) and its expiry. The
API authenticates them in curation/api/authentication.py. A token lives between an hour and a year
(settings.TOKEN_TTL_HOURS_MIN/MAX), and a change of its user's password revokes it."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import knox_settings


def purge_expired(user=None):
    """Delete expired tokens (one user's, or everyone's); returns how many."""
    tokens = AuthToken.objects.filter(expiry__lte=timezone.now())
    if user is not None:
        tokens = tokens.filter(user=user)
    return tokens.delete()[0]


def ttl_hours_refusal(hours):
    """None when a token may live `hours` hours, else why not (one line naming the bounds)."""
    low, high = settings.TOKEN_TTL_HOURS_MIN, settings.TOKEN_TTL_HOURS_MAX
    if low <= hours <= high:
        return None
    return f"{hours} hours: a token lives between {low} and {high} hours (1 year)"


def issue_token(user, ttl=None):
    """A new token for `user`, valid for `ttl` (a timedelta; default settings.REST_KNOX["TOKEN_TTL"], from
    FER_TOKEN_TTL_HOURS). Returns (the AuthToken row, the token string). The user's expired tokens go at the same
    time. Raises ValueError, issuing nothing, for a ttl outside an hour to a year."""
    refusal = ttl_hours_refusal(ttl / timedelta(hours=1)) if ttl is not None else None
    if refusal:
        raise ValueError(refusal)
    purge_expired(user)
    return AuthToken.objects.create(user=user, expiry=ttl if ttl is not None else knox_settings.TOKEN_TTL)


def revoke_tokens(user):
    """Delete every token of `user`; returns how many."""
    return AuthToken.objects.filter(user=user).delete()[0]


def revoke_on_password_change(sender, instance, created, **kwargs):
    """post_save of the user model: a new password (set_password, which the password forms, the admin,
    createsuperuser and changepassword all call) revokes the user's tokens; other saves (last_login, a name) and
    the hasher upgrade check_password makes (it clears the raw password before saving) do not."""
    if not created and getattr(instance, "_password", None) is not None:
        revoke_tokens(instance)
