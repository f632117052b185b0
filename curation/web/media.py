"""/media/<path>: the files under MEDIA_ROOT (imported and generated faces, plots, run files) for signed-in users
only, in every settings module.

Dataset images are private. The user is signed in (a session) or sends a valid API token (the API's image and plot
URLs point here); anyone else gets a redirect to the log-in page (no credentials) or 403 (a bad token), never the
file. The path is resolved inside MEDIA_ROOT first: `..`, an absolute path, a NUL byte, a hidden name (an atomic
write's temporary file) or a symlink that leads out of the root is 404, as is anything but a plain file.

Then either the web server sends the file (settings.MEDIA_ACCEL_REDIRECT, e.g. "/protected-media/": the answer is an
empty one with `X-Accel-Redirect: /protected-media/<resolved path>`, which nginx serves from an `internal` location
aliased to the media root, see deploy/nginx.conf.template) or Django does (FileResponse: deployments without nginx,
and the development server). Either way the answer may be cached by the browser only (private)."""
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpResponse, HttpResponseForbidden
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.http import http_date
from django.views.decorators.http import require_safe
from rest_framework import exceptions

from curation.api.authentication import ExpiringTokenAuthentication

# Files under the media root are written once (imports, generated images); plots may be redrawn by a new run, so
# browsers keep a copy for an hour, then ask again (and get 304 if the file is unchanged).
CACHE_SECONDS = 3600


def resolve_media_path(relative):
    """The plain file `relative` names inside MEDIA_ROOT, symlinks resolved, as (root, path); Http404 otherwise."""
    if not relative or "\x00" in relative or relative.startswith("/"):
        raise Http404("No such media file")
    parts = PurePosixPath(relative).parts
    if any(part.startswith(".") for part in parts):  # "..", and hidden names such as ".x.png.123.tmp"
        raise Http404("No such media file")
    root = Path(settings.MEDIA_ROOT).resolve()
    try:
        path = root.joinpath(*parts).resolve(strict=True)
        is_file = path.is_file()
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name the OS refuses
        raise Http404("No such media file") from None
    if not is_file or not path.is_relative_to(root):
        raise Http404("No such media file")
    return root, path


def _token_user(request):
    """(user, None) for a valid `Authorization: Token ...`, (None, message) for a bad one, (None, None) for none."""
    try:
        found = ExpiringTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        return None, str(exc.detail)
    return (found[0], None) if found else (None, None)


@require_safe
def serve_media(request, path):
    if not request.user.is_authenticated:
        user, problem = _token_user(request) if "HTTP_AUTHORIZATION" in request.META else (None, None)
        if problem:
            return HttpResponseForbidden(problem, content_type="text/plain; charset=utf-8")
        if user is None:
            return redirect_to_login(request.get_full_path())
    root, file = resolve_media_path(path)
    modified = int(file.stat().st_mtime)
    response = get_conditional_response(request, last_modified=modified)
    if response is None:
        if settings.MEDIA_ACCEL_REDIRECT:
            # nginx unescapes the URI, then serves the file from its internal location with its own type and length.
            response = HttpResponse()
            del response["Content-Type"]  # nginx's own, from the file's extension
            response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_REDIRECT + quote(file.relative_to(root).as_posix())
        else:
            response = FileResponse(file.open("rb"))
        response["Last-Modified"] = http_date(modified)
    patch_cache_control(response, private=True, max_age=CACHE_SECONDS)
    patch_vary_headers(response, ("Cookie", "Authorization"))
    return response
