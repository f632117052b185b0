import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from curation.roles import CURATORS_GROUP
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counts live in the cache, which outlives a test's database rollback."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita")


@pytest.fixture
def curator(db):
    user = UserFactory(username="carl")
    user.groups.add(Group.objects.get_or_create(name=CURATORS_GROUP)[0])
    return user


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def reviewer_api(reviewer):
    """A reviewer's client, authenticated by token as a script would be."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reviewer).key}")
    return client


@pytest.fixture
def curator_api(curator):
    """A curator's client, authenticated by a session as a browser would be (CSRF checks off; see
    test_permissions for the check itself)."""
    client = APIClient()
    client.force_login(curator)
    return client
