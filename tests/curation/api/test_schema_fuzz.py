"""Schemathesis against /api/schema/: generated requests to every operation, through the WSGI app in this process
(no server), as a curator; none may end in a server error, and responses must match the schema. A second run puts
hostile values into every number the schema takes (body, query, path: "nan", "inf", "1e999", ints past 64 bits)
and into the paging parameters, and after each request reads the image it may have decided: a value that was
stored and breaks later reads (a NaN decision time made every read of its image a 500) fails it too: on PostgreSQL
it fails without the decision API's finiteness check (SQLite stores a NaN as NULL, so only PostgreSQL shows it)."""
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from curation.models import Image
from curation.review.services import image_claim_next
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
    claimed = image_claim_next(user=curator, dataset=ds, filters={})  # decisions on it come from the lease holder
    assert claimed.pk == images[0].pk
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


# Numbers as users can send them: the text forms that float() reads as NaN or infinity, ints past PostgreSQL's
# bigint and Python's float, negatives, fractions, and text. Paging cursors: junk, huge, control characters.
HOSTILE_NUMBERS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999", 10 ** 20, 2 ** 63,
                   -(2 ** 63) - 1, "99999999999999999999", -1, 0, 0.5, "x", ""]
HOSTILE_CURSORS = ["", "x", "99999999999999999999", "-1", "cD0xMDA=", "cj0xJnA9OTk5OTk5OTk5OTk5OTk5OTk5OTk=",
                   "\x00", "%00"]


def _resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        schema = root.get("x-bundled", {})[schema["$ref"].rsplit("/", 1)[-1]]
    return schema or {}


def _numeric_inputs(operation):
    """(location, name) of each number or integer the operation takes in its path, query or JSON body."""
    found = [("path", p.name) for p in operation.path_parameters
             if p.definition.get("schema", {}).get("type") in ("integer", "number")]
    found += [("query", p.name) for p in operation.query
              if p.definition.get("schema", {}).get("type") in ("integer", "number")]
    for body in operation.body:
        if getattr(body, "media_type", "") != "application/json":
            continue
        root = body.definition.get("schema", {})
        for name, prop in _resolve(root, root).get("properties", {}).items():
            if _resolve(prop, root).get("type") in ("integer", "number"):
                found.append(("body", name))
    return found


@schema.include(path_regex=r"^/api/(images|jobs|runs|review/next|datasets/\{name\}/calibration)").parametrize()
@schema.given(data=st.data())
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_hostile_numbers_and_paging_never_cause_a_server_error(case, data, known):
    if case.path_parameters:
        case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
    if isinstance(case.body, dict) and "dataset" in case.body:
        case.body["dataset"] = known["name"]
    # One hostile value at a time, the other inputs valid, so that it reaches as far into the code as it can.
    if case.path.endswith("/decision/") and isinstance(case.body, dict):
        case.body = {"action": data.draw(st.sampled_from(["confirm", "exclude", "skip"]), label="action"),
                     "version": Image.objects.get(pk=known["image_id"]).version, "seconds_spent": 1.5}
    targets = _numeric_inputs(case.operation)
    if targets:
        where, name, value = data.draw(st.sampled_from([(*t, v) for t in targets for v in HOSTILE_NUMBERS]),
                                       label="hostile input")
        if where == "path":
            case.path_parameters[name] = value
        elif where == "query":
            case.query = {**(case.query or {}), name: value}
        elif isinstance(case.body, dict):
            case.body[name] = value
    if any(p.name == "cursor" for p in case.operation.query):
        case.query = {**(case.query or {}), "cursor": data.draw(st.sampled_from(HOSTILE_CURSORS), label="cursor")}
    headers = {"Authorization": f"Token {known['token']}"}
    case.call_and_validate(headers=headers, checks=[not_a_server_error, content_type_conformance])
    # Whatever the request stored must not break a later read of the image.
    read = case.operation.schema["/api/images/{image_id}/"]["GET"].Case(
        path_parameters={"image_id": known["image_id"]})
    read.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])
