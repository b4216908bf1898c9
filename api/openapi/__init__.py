"""The OpenAPI 3.1 description of /v1 and /client, served at GET /v1/openapi.json and
rendered as the dashboard's API reference (api/pages.py).

Plain data, built once:
- schemas.py: the contract's error codes and the JSON shapes of bodies and answers;
- builders.py: how one operation is described. What every endpoint shares (the bearer
  token, X-Project, Idempotency-Key, the error envelope, the rate-limit headers) is added
  by `describe_operation`, so that no operation can forget it;
- operations.py: every endpoint, one `describe_operation(...)` each;
- document.py: the whole document, and the view that serves it.

tests/api/test_openapi.py fails when a route under /v1 or /client has no description
here, or a description has no route; tests/api/test_schemathesis.py calls every operation
with each kind of token and checks every answer against this document.
"""

from api.openapi.document import openapi_document, openapi_json

__all__ = ["openapi_document", "openapi_json"]
