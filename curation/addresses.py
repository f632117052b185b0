"""The client address of a request: the one place the site decides who is asking, for the log-in limits (token
endpoint, log-in form, admin log-in) and every other per-address count.

settings.TRUSTED_PROXIES (FER_TRUSTED_PROXIES) is the number of reverse proxies in front of the web server. At 0
(the default) X-Forwarded-For is ignored and the address is the TCP peer's (REMOTE_ADDR): anyone can send the header,
so trusting it without a proxy that rewrites it lets a client pick a new address per request. At N > 0 each trusted
proxy appends the address it received the request from, so the client is the N-th address from the right; what a
client wrote to the left of it is not read (the semantics of DRF's NUM_PROXIES, which the settings set to the same
number)."""
from django.conf import settings


def client_address(request):
    """The request's client address under settings.TRUSTED_PROXIES (a Django or DRF request)."""
    meta = request.META
    remote = meta.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "") if proxies else ""
    addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
    if not addresses:
        return remote
    return addresses[-min(proxies, len(addresses))]
