"""Issue an API token for a user, for scripts: the name and output of DRF's command, which this replaces (DRF's
authtoken app is no longer installed), so that what scripts already run keeps working. The token is a new
django-rest-knox token each time, stored as a digest with an expiry: its string is printed here, once."""
from argparse import ArgumentTypeError
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from curation.management.migrated import DatabaseCommand
from curation.tokens import issue_token, revoke_tokens, ttl_hours_refusal


def ttl_hours(text):
    """--ttl-hours: a whole number of hours within a token's bounds, refused while the arguments are read (before
    the database is touched, so nothing is issued)."""
    try:
        hours = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a whole number of hours") from None
    refusal = ttl_hours_refusal(hours)
    if refusal:
        raise ArgumentTypeError(refusal)
    return hours


class Command(DatabaseCommand):
    help = ("Issue a new API token for USERNAME and print it once (`Generated token <token> for user <username>`, "
            "as DRF's command did); the database keeps only its digest. It expires after FER_TOKEN_TTL_HOURS, or "
            "--ttl-hours.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("-r", "--reset", action="store_true", dest="reset_token",
                            help="revoke the user's other tokens first")
        parser.add_argument("--ttl-hours", type=ttl_hours, metavar="H",
                            help="hours until it expires, 1 to 8760 (a year; default: FER_TOKEN_TTL_HOURS)")

    def handle(self, *args, username, reset_token, ttl_hours, **options):
        User = get_user_model()
        try:
            user = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"Cannot create the Token: user {username} does not exist") from None
        revoked = revoke_tokens(user) if reset_token else 0
        row, token = issue_token(user, ttl=timedelta(hours=ttl_hours) if ttl_hours is not None else None)
        self.stdout.write(f"Generated token {token} for user {username}")
        # Notes on stderr: stdout stays the one line scripts read.
        expiry = timezone.localtime(row.expiry).isoformat(timespec="seconds")
        self.stderr.write(f"It expires at {expiry}. Only its digest is stored: this is the one time it is shown."
                          + (f" Revoked {revoked} other token{'s' if revoked != 1 else ''}." if reset_token else ""))
