"""The API tests' own setup; the users and their clients (reviewer, curator, anon_api, reviewer_api, curator_api)
come from tests/curation/conftest.py."""
import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counts live in the cache, which outlives a test's database rollback."""
    cache.clear()
    yield
    cache.clear()
