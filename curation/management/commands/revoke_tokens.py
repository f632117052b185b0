"""Revoke API tokens: every token of the named users (a lost laptop, a person who left), and/or the expired tokens
of everyone (they are refused already; this deletes their rows)."""
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from curation.management.migrated import DatabaseCommand
from curation.tokens import purge_expired, revoke_tokens


class Command(DatabaseCommand):
    help = ("Revoke (delete) every API token of each USERNAME; --expired deletes everyone's expired tokens. A "
            "revoked token is refused with 401 at once.")

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="*", metavar="USERNAME")
        parser.add_argument("--expired", action="store_true", help="delete every user's expired tokens")

    def handle(self, *args, usernames, expired, **options):
        if not usernames and not expired:
            raise CommandError("Name the users whose tokens to revoke (USERNAME ...), or give --expired")
        User = get_user_model()
        users = {u.get_username(): u for u in User._default_manager.filter(**{
            f"{User.USERNAME_FIELD}__in": usernames})}
        missing = [name for name in usernames if name not in users]
        if missing:  # nothing is revoked unless every name is right
            raise CommandError(f"No such user: {', '.join(missing)}. Nothing was revoked.")
        for name in usernames:
            n = revoke_tokens(users[name])
            self.stdout.write(f"{name}: revoked {n} token{'s' if n != 1 else ''}")
        if expired:
            n = purge_expired()
            self.stdout.write(f"expired: deleted {n} token{'s' if n != 1 else ''}")
