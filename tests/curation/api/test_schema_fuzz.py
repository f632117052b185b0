"""Schemathesis against /api/schema/: generated requests to every operation, through the WSGI app in this process
(no server), as a curator; none may end in a server error, and responses must match the schema."""
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from curation.tokens import issue_token
from tests.factories import DatasetFactory, ImageFactory, JobFactory, RunFactory

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # A real WSGI handler closes the database connection around each request, as it should in production; that
    # would end the test's transaction. Django's own test client switches it off the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Loaded while the tests are collected: the schema view touches no database. (schemathesis.pytest.from_fixture
# would defer it, but schemathesis 4.32.5's lazy loader uses a pytest attribute that pytest 9 removed.)
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())


@pytest.fixture
def known(curator, settings):
    """Real objects for the path parameters, so that requests reach the views' work, not only their 404s; and
    rates high enough that the throttles do not answer everything with 429."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"export": "10000/min", "login": "10000/min"}}
    ds = DatasetFactory(name="fuzz")
    images = [ImageFactory(dataset=ds, suspicion=s) for s in (0.9, 0.5, None)]
    job = JobFactory(kind="import_dataset", params={})
    run = RunFactory(dataset=ds, arch="small_cnn", test_metrics={"accuracy": 0.5, "macro_f1": 0.4})
    token = issue_token(curator)[1]
    return {"name": ds.name, "image_id": images[0].pk, "job_id": job.pk, "run_id": run.pk, "token": token}


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_error_and_responses_match_the_schema(case, known):
    if case.path_parameters:
        case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
    if isinstance(case.body, dict) and "dataset" in case.body:
        case.body["dataset"] = known["name"]
    case.call_and_validate(
        headers={"Authorization": f"Token {known['token']}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
