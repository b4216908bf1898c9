"""The OpenAPI document (api/openapi/) describes exactly the API that exists, is valid
OpenAPI 3.1, is served to anyone at /v1/openapi.json, and is readable at /docs/api/."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from openapi_spec_validator import validate

from api.openapi import openapi_document
from api.openapi.schemas import ERROR_CODES
from tests.api.assertions import REQUEST_ID, assert_error

# HEAD is GET without a body to HTTP, and OpenAPI tools do not expect it described apart.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DOCUMENT_METHODS = {"get", "post", "put", "patch", "delete", "options", "head", "trace"}
_PARAMETER = re.compile(r"<(?:[^>:]+:)?[^>]+>|\{[^}]+\}")


def _template(path: str) -> str:
    """A path with its parameters unnamed: /v1/agents/<str:name> and /v1/agents/{name}
    are both /v1/agents/{}."""
    return _PARAMETER.sub("{}", path)


def _routes(
    patterns: list[URLPattern | URLResolver], prefix: str = "/"
) -> Iterator[tuple[str, URLPattern]]:
    """Every route under the API's URLconf, with its whole path; the catch-alls (regex
    patterns, which answer `404 not_found` for any other path) are not routes."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif not isinstance(entry.pattern, RegexPattern):
            yield prefix + str(entry.pattern), entry


def _answers(route: URLPattern, path: str, method: str) -> bool:
    """Whether the route's view answers `method` (anything but 405), asked without a
    token: an endpoint says which methods it takes before it reads who is calling."""
    pattern = route.pattern
    assert isinstance(pattern, RoutePattern)
    kwargs = {name: "x" for name in pattern.converters}
    request = RequestFactory().generic(method, path)
    view: Callable[..., Any] = route.callback
    return view(request, **kwargs).status_code != 405


def _served() -> set[tuple[str, str]]:
    served = set()
    for path, route in _routes(get_resolver("reminix_dashboard.api_root_urls").url_patterns):
        methods = METHODS + (("OPTIONS",) if path.startswith("/client/") else ())
        for method in methods:
            if _answers(route, path, method):
                served.add((_template(path), method.lower()))
    return served


def _described() -> set[tuple[str, str]]:
    return {
        (_template(path), method)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method in DOCUMENT_METHODS
    }


@pytest.fixture
def served(db: None) -> set[tuple[str, str]]:
    return _served()


def test_every_route_and_method_of_the_api_is_described(served):
    missing = sorted(served - _described())
    assert not missing, f"answered by the API but not in api/openapi/: {missing}"


def test_nothing_is_described_that_the_api_does_not_answer(served):
    extra = sorted(_described() - served)
    assert not extra, f"in api/openapi/ but not answered by the API: {extra}"


def test_the_walk_sees_the_routes_it_should(served):
    # Guards the two tests above against a walk that finds nothing (and so agrees).
    assert ("/v1/agents/{}/invoke", "post") in served
    assert ("/v1/agents/{}", "put") in served
    assert ("/client/token", "options") in served
    assert ("/v1/agents", "post") not in served


def test_the_document_is_valid_openapi_3_1():
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_schemathesis_reads_every_operation():
    schema = schemathesis.openapi.from_dict(openapi_document())
    # An operation schemathesis could not read would be an Err here, which has no .ok().
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert len(labels) == len(_described())


def test_operation_ids_are_unique():
    ids = [
        operation["operationId"]
        for item in openapi_document()["paths"].values()
        for operation in item.values()
    ]
    assert len(ids) == len(set(ids))


def test_every_token_operation_describes_the_errors_every_token_call_can_get():
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if not operation["security"]:
                continue
            for status in ("400", "401", "403", "429", "500", "503"):
                assert status in operation["responses"], (method, path, status)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "change"),
    [
        ("patch", "/v1/api-keys/{id}", "renamed"),
        ("post", "/v1/api-keys/{id}/roll", "rolled"),
        ("post", "/v1/api-keys/{id}/suspend", "suspended"),
        ("post", "/v1/api-keys/{id}/resume", "resumed"),
    ],
)
def test_a_change_to_an_ended_key_is_described_as_the_409_it_gets(method, path, change):
    """The API answers each of them 409 invalid_request for a revoked or expired key (as
    the dashboard does a roll of one, and a regenerate of a revoked personal token): the
    operation and its 409 say so."""
    operation = openapi_document()["paths"][path][method]
    assert "`409` if the key is revoked or expired" in operation["description"]
    conflict = operation["responses"]["409"]
    if "$ref" in conflict:
        name = conflict["$ref"].rsplit("/", 1)[1]
        conflict = openapi_document()["components"]["responses"][name]
    assert change in conflict["description"]


def test_every_contract_error_code_is_described():
    contract_codes = {
        "missing_api_key",
        "invalid_api_key",
        "expired_api_key",
        "suspended_api_key",
        "ip_not_allowed",
        "https_required",
        "insufficient_permissions",
        "invalid_request",
        "missing_required_field",
        "invalid_field_value",
        "agent_not_found",
        "not_found",
        "rate_limit_exceeded",
        "internal_error",
        "service_unavailable",
    }
    # Where the contract is silent (a 409), the code the reminix SDK retries on.
    beyond_the_contract = {"idempotency_in_progress"}
    described = {code for codes in ERROR_CODES.values() for code in codes}
    assert described == contract_codes | beyond_the_contract


def test_the_document_is_served_to_anyone_without_a_token(db):
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert REQUEST_ID.match(response["X-Request-Id"])
    assert "max-age" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert json.loads(response.content) == json.loads(json.dumps(openapi_document()))


def test_the_document_is_served_even_with_a_bad_token(db):
    response = Client().get("/v1/openapi.json", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 200


def test_head_answers_the_documents_headers_without_it(db):
    response = Client().head("/v1/openapi.json")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response["Content-Length"]) == len(Client().get("/v1/openapi.json").content)


def test_writing_to_the_document_is_405_in_the_envelope(db):
    response = Client().post("/v1/openapi.json", "{}", content_type="application/json")
    assert_error(response, 405, "invalid_request")
    assert response["Allow"] == "GET, HEAD"


def test_the_reference_page_is_readable_without_signing_in(client, db):
    response = client.get("/docs/api/")
    assert response.status_code == 200
    page = response.content.decode()
    for item in openapi_document()["paths"].values():
        for operation in item.values():
            assert f'id="{operation["operationId"]}"' in page
    assert 'href="/v1/openapi.json"' in page
    # Nothing from elsewhere, and nothing inline that the CSP would refuse.
    assert 'src="http' not in page and 'rel="stylesheet" href="http' not in page
    assert "<script>" not in page and "style=" not in page


def test_the_reference_page_lists_each_field_with_its_limits(client, db):
    page = client.get("/docs/api/").content.decode()
    assert "ttlSeconds" in page and "to 86400" in page
    assert "messages[].role" in page
    assert "data[].name" in page
