"""Assertions shared by the /v1 API tests (shared/CONTRACT.md, "Errors")."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse

REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


def assert_error(response: HttpResponse, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's error envelope with `status` and `code`, exactly.

    Returns the inner error object so that a test can look at its message.
    """
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "status", "requestId"}, error
    assert error["code"] == code, error
    assert error["status"] == status, error
    assert isinstance(error["message"], str) and error["message"], error
    assert REQUEST_ID.match(error["requestId"]), error
    assert response["X-Request-Id"] == error["requestId"]
    return error


def assert_ok(response: HttpResponse, status: int = 200) -> Any:
    """A successful JSON answer with a request id header; returns the parsed body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    assert REQUEST_ID.match(response["X-Request-Id"])
    return response.json()
