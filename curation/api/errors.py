"""Every API error as JSON: {"detail": a sentence a person can act on, "code": a stable word}, plus "errors"
(field -> messages) for bad input. Domain exceptions from the services map to their HTTP status here, so that
views stay a few lines. What no handler foresaw (an exception outside DRF's handling, or one raised while a response
renders) reaches Django's handler500, which fer_site/urls.py points at server_error below: under /api/ that is a
JSON 500 too, never Django's HTML page."""
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from curation.jobs.errors import JobParamsError
from curation.review.services import ClaimLost, LeaseHeld, NothingToUndo
from curation.services import UndoConflict, VersionConflict

API_PREFIX = "/api/"


def _is_api(request):
    return request.path_info.startswith(API_PREFIX)


def server_error(request, *args, **kwargs):
    """handler500: a JSON body under /api/ (Django has logged the traceback already; the body names nothing of it),
    Django's own page elsewhere."""
    if _is_api(request):
        return JsonResponse({"detail": "The server could not answer this request; the error has been logged.",
                             "code": "server_error"}, status=500)
    return defaults.server_error(request)


def page_not_found(request, exception, *args, **kwargs):
    """handler404: a JSON body under /api/ (an Http404 raised outside DRF's views), Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse({"detail": f"Nothing at {request.path}.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def _conflict(exc, request):
    """409: the conflict in words for the requester ("you changed it at 14:05" where it was them), with who changed
    the image and when where that is known."""
    data = {"detail": exc.message_for(getattr(request, "user", None)), "code": "version_conflict",
            "current_version": exc.actual}
    if isinstance(exc, UndoConflict):
        data["code"] = "undo_conflict"
    if exc.changed_at is not None:
        data["changed_by"] = exc.changed_by.get_username() if exc.changed_by is not None else None
        data["changed_at"] = exc.changed_at.isoformat().replace("+00:00", "Z")
    return Response(data, status=status.HTTP_409_CONFLICT)


def _flatten(errors, prefix=""):
    """'field: message' sentences out of DRF's nested validation errors."""
    if isinstance(errors, dict):
        return [m for key, value in errors.items()
                for m in _flatten(value, f"{prefix}{key}: " if key != "non_field_errors" else prefix)]
    if isinstance(errors, list):
        return [m for value in errors for m in _flatten(value, prefix)]
    return [f"{prefix}{errors}"]


def api_exception_handler(exc, context):
    if isinstance(exc, VersionConflict):
        return _conflict(exc, context.get("request"))
    if isinstance(exc, NothingToUndo):
        exc = Conflict(str(exc), code="nothing_to_undo")
    elif isinstance(exc, LeaseHeld):
        exc = Conflict(str(exc), code="lease_held")
    elif isinstance(exc, ClaimLost):
        exc = Conflict(str(exc), code="claim_lost")
    elif isinstance(exc, JobParamsError):
        exc = exceptions.ValidationError({"params": [str(exc)]}, code="invalid_params")
    elif isinstance(exc, (ObjectDoesNotExist, Http404)):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) <= {"detail"} and "detail" in data:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        response.data = {"detail": str(data["detail"]), "code": code if isinstance(code, str) else "error"}
    else:
        response.data = {"detail": "Invalid input. " + " ".join(_flatten(data)), "code": "invalid", "errors": data}
    return response
