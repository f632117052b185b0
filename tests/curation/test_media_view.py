"""/media/<path> in every settings module (curation/web/media.py): the files under MEDIA_ROOT go to signed-in users
only, from inside the media root only, either as the file itself (Django's FileResponse) or as nginx's
X-Accel-Redirect to an internal location (MEDIA_ACCEL_REDIRECT). The tests run with DEBUG off, as production does."""
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.http import http_date

from curation.tokens import issue_token
from tests.factories import UserFactory
from tests.images import image_bytes

FACE = "datasets/faces/happy/0001.png"


@pytest.fixture
def face(_media_root):
    data = image_bytes(seed=1)
    path = _media_root / FACE
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return data


def _body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_signed_in_user_gets_the_file_with_debug_off(as_reviewer, face, settings):
    assert settings.DEBUG is False
    response = as_reviewer.get(f"/media/{FACE}")
    assert response.status_code == 200
    assert _body(response) == face
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(len(face))
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert "private" in cache_control and "public" not in cache_control
    assert "X-Accel-Redirect" not in response


def test_a_head_request_gets_the_headers(as_reviewer, face):
    response = as_reviewer.head(f"/media/{FACE}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"


def test_anonymous_is_sent_to_log_in_never_given_the_file(client, face, db):
    response = client.get(f"/media/{FACE}")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/media/")
    assert _body(response) != face


def test_a_valid_api_token_gets_the_file_and_a_bad_one_is_refused(client, user, face):
    token = issue_token(user)[1]
    response = client.get(f"/media/{FACE}", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and _body(response) == face
    response = client.get(f"/media/{FACE}", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 403
    assert b"Invalid token" in response.content and _body(response) != face


def test_an_unchanged_file_answers_304(as_reviewer, face, _media_root):
    mtime = os.stat(_media_root / FACE).st_mtime
    response = as_reviewer.get(f"/media/{FACE}", HTTP_IF_MODIFIED_SINCE=http_date(mtime + 1))
    assert response.status_code == 304
    assert as_reviewer.get(f"/media/{FACE}", HTTP_IF_MODIFIED_SINCE=http_date(mtime - 3600)).status_code == 200


def test_only_get_and_head(as_reviewer, face):
    assert as_reviewer.post(f"/media/{FACE}").status_code == 405


@pytest.mark.parametrize("path", [
    "datasets/faces/happy/missing.png",
    "datasets/faces/happy",  # a folder
    "datasets/faces/happy/../../../outside.txt",
    "datasets/%2e%2e/%2e%2e/outside.txt",
    "%2Fetc/passwd",
    "/etc/passwd",
    "datasets/faces/happy/%00.png",
    "datasets/faces/happy/.0001.png.123.tmp",  # an atomic write's temporary file
    "link-out/outside.txt",  # a symlink out of the media root
    "file-link-out.txt",
])
def test_a_path_outside_the_media_root_or_not_a_plain_file_is_404(as_reviewer, face, _media_root, path):
    outside = _media_root.parent / "outside"
    outside.mkdir()
    (outside / "outside.txt").write_text("secret")
    (_media_root.parent / "outside.txt").write_text("secret")
    (_media_root / "link-out").symlink_to(outside)
    (_media_root / "file-link-out.txt").symlink_to(outside / "outside.txt")
    (_media_root / "datasets/faces/happy/.0001.png.123.tmp").write_bytes(b"half")
    response = as_reviewer.get(f"/media/{path}")
    assert response.status_code == 404, path
    assert b"secret" not in _body(response) and b"half" not in _body(response)


def test_a_symlink_that_stays_inside_the_media_root_is_followed(as_reviewer, face, _media_root):
    (_media_root / "alias").symlink_to(_media_root / "datasets")
    response = as_reviewer.get("/media/alias/faces/happy/0001.png")
    assert response.status_code == 200 and _body(response) == face


def test_with_the_offload_set_the_answer_names_the_file_for_nginx(as_reviewer, face, _media_root, settings):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    name = _media_root / "datasets/faces/happy/a b%?#é.png"
    name.write_bytes(face)
    (_media_root / "alias").symlink_to(_media_root / "datasets")
    response = as_reviewer.get(f"/media/{FACE}")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{FACE}"
    assert _body(response) == b""
    assert "private" in response["Cache-Control"]
    # Characters nginx would read as a query or a fragment are escaped; nginx unescapes the URI before the lookup.
    response = as_reviewer.get("/media/datasets/faces/happy/a%20b%25%3F%23%C3%A9.png")
    assert response["X-Accel-Redirect"] == "/protected-media/datasets/faces/happy/a%20b%25%3F%23%C3%A9.png"
    # nginx is given the resolved path: it never follows a link the view has not checked.
    response = as_reviewer.get("/media/alias/faces/happy/0001.png")
    assert response["X-Accel-Redirect"] == f"/protected-media/{FACE}"


def test_with_the_offload_set_anonymous_and_bad_paths_still_get_no_offload(client, face, settings, db):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    response = client.get(f"/media/{FACE}")
    assert response.status_code == 302 and "X-Accel-Redirect" not in response
    client.force_login(UserFactory(username="u"))
    response = client.get("/media/datasets/../../outside.txt")
    assert response.status_code == 404 and "X-Accel-Redirect" not in response


def test_the_offload_setting_is_checked():
    from fer_site.settings.base import media_accel_redirect

    assert media_accel_redirect("") == ""
    assert media_accel_redirect("/protected-media/") == "/protected-media/"
    for bad in ("protected-media/", "/protected-media", "/a/../b/", "/a b/", "/p?x/", "/media/"):
        with pytest.raises(ImproperlyConfigured, match="FER_MEDIA_ACCEL_REDIRECT"):
            media_accel_redirect(bad)
