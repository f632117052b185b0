"""The site's own 404 and 500 pages in every settings module. With DEBUG off, Django renders them through handler404
and handler500 (fer_site/urls.py). With DEBUG on (the development settings, so `make demo`), Django would answer
with its technical pages instead, which show the URL patterns and settings to whoever mistypes an address: this
middleware answers with the site's pages there too. FER_SITE_ERROR_PAGES=false gives a developer Django's pages
back. Tracebacks are logged as Django logs them (and the test client still re-raises them)."""
from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.core.signals import got_request_exception
from django.http import Http404
from django.urls import Resolver404, get_resolver
from django.utils.log import log_response

from curation.api.errors import page_not_found, server_error


def _active():
    return settings.DEBUG and getattr(settings, "SITE_ERROR_PAGES", True)


class SiteErrorPagesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _active():
            try:  # an address that matches no URL: Django would raise Resolver404 past every process_exception
                get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
            except Resolver404 as exc:
                return _not_found(request, exc)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not _active():
            return None
        if isinstance(exception, Http404):
            return _not_found(request, exception)
        if isinstance(exception, (PermissionDenied, BadRequest, SuspiciousOperation)):
            return None  # Django's 403 and 400 handling, as without this middleware
        got_request_exception.send(sender=None, request=request)
        response = server_error(request)
        log_response("%s: %s", "Internal Server Error", request.path, response=response, request=request,
                     exception=exception)
        return response


def _not_found(request, exception):
    response = page_not_found(request, exception)
    log_response("Not Found: %s", request.path, response=response, request=request)
    return response
