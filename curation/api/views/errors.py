from django.http import JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # a 404 for any method, not a CSRF page for a POST
def not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in JSON like every other API error (this route catches them all, so
    Django's slash-appending redirect never happens here: the message says where the slash goes instead)."""
    detail = f"No API endpoint at {request.path}."
    if not request.path.endswith("/"):
        try:
            if resolve(request.path + "/").func is not not_found:
                detail += f" Did you mean {request.path}/ ?"
        except Resolver404:
            pass
    return JsonResponse({"detail": detail, "code": "not_found"}, status=404)
