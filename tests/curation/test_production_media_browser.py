"""Faces under production settings, in a real browser: gunicorn runs `fer_site.settings.production` (static files
collected as the image's build step does, plain HTTP with the HTTPS redirect and Secure cookies switched off as
deploy.md says for a try without TLS, no nginx: Django sends the files itself), and a reviewer signed in with
Chromium sees the review card's face and the grid's thumbnails load. The image URLs answer 200 with the file to the
signed-in reviewer and never the file to anyone else."""
import os
import sys

import pytest
from django.conf import settings

from tests.browser import TIMEOUT_MS, log_in
from tests.conftest import worker_database_url
from tests.factories import DatasetFactory, ImageFactory, UserFactory
from tests.images import image_bytes
from tests.production import SECRET_KEY, Process, collected_static, free_port, production_password, wait_for_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ALL_LOADED = """selector => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0);
}"""


class Server:
    def __init__(self, url):
        self.url = url


@pytest.fixture
def production_server(transactional_db, tmp_path, tmp_path_factory, _media_root):
    """gunicorn under production settings on this test's database and media root; stopped at the end."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "DJANGO_SETTINGS_MODULE": "fer_site.settings.production", "DJANGO_SECRET_KEY": SECRET_KEY,
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SECURE_SSL_REDIRECT": "false",
           "DJANGO_SESSION_COOKIE_SECURE": "false", "DJANGO_CSRF_COOKIE_SECURE": "false",
           "DATABASE_URL": worker_database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "FER_DATA_DIR": str(tmp_path / "data"), "FER_MEDIA_ROOT": str(_media_root),
           "FER_STATIC_ROOT": str(collected_static(tmp_path_factory)), "FER_CACHE_URL": "locmem://"}
    server = Process([sys.executable, "-m", "gunicorn", "fer_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
                      "--workers", "1", "--timeout", "120"], env=env, log_path=tmp_path / "gunicorn.log")
    try:
        wait_for_port(port, server)
        yield Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


def test_a_reviewer_sees_faces_on_the_card_and_the_grid_and_no_one_else_gets_them(production_server, browser,
                                                                                    _media_root):
    ds = DatasetFactory(name="faces")
    images = [ImageFactory(dataset=ds, suspicion=0.9 - i / 10) for i in range(3)]
    faces = {}
    for i, image in enumerate(images):
        faces[image.file] = image_bytes(seed=i, size=48)
        (_media_root / image.file).parent.mkdir(parents=True, exist_ok=True)
        (_media_root / image.file).write_bytes(faces[image.file])
    rita = UserFactory(username="rita")
    rita.password = production_password("a long pass phrase")  # the factory would hash it with the tests' hasher
    rita.save(update_fields=["password"])

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    stranger = browser.new_context()
    try:
        page = log_in(context.new_page(), production_server, "rita", "/review/", password="a long pass phrase")
        page.wait_for_selector(f'#card[data-image-id="{images[0].pk}"]')
        page.wait_for_function(ALL_LOADED, arg="#card img", timeout=TIMEOUT_MS)
        card_src = page.get_attribute("#card img", "src")
        assert card_src == f"/media/{images[0].file}"

        page.goto(f"{production_server.url}/review/grid/?dataset=faces")
        page.wait_for_function(ALL_LOADED, arg="#grid img", timeout=TIMEOUT_MS)
        grid_srcs = page.eval_on_selector_all("#grid img", "imgs => imgs.map(img => img.getAttribute('src'))")
        assert sorted(grid_srcs) == sorted(f"/media/{image.file}" for image in images)

        for src in grid_srcs:
            mine = context.request.get(production_server.url + src)
            assert mine.status == 200 and mine.body() == faces[src.removeprefix("/media/")]
            theirs = stranger.request.get(production_server.url + src, max_redirects=0)
            assert theirs.status in {302, 403}, theirs.status
            assert theirs.body() != faces[src.removeprefix("/media/")]
    finally:
        context.close()
        stranger.close()
