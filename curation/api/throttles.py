"""Rate limits. Rates are read from settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] on every request (DRF's own
classes read them once at import), so that deployment and tests can change them. The counts live in the default
cache, which the settings make shared by every web process (FER_CACHE_URL), so a limit holds for the whole site.
A client's address is curation.addresses.client_address's (FER_TRUSTED_PROXIES), never a raw X-Forwarded-For."""
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from curation.addresses import client_address


class _SettingsRate:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request):
        return client_address(request)


class ExportThrottle(_SettingsRate, SimpleRateThrottle):
    """Exports per user: each one reads a whole dataset."""

    scope = "export"

    def get_cache_key(self, request, view):
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginThrottle(_SettingsRate, SimpleRateThrottle):
    """Log-in attempts per client address: the API's token endpoint, the site's log-in form and the admin's log-in
    share one count per address."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
