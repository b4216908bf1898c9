"""JSON in and out of the API."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse

from api import errors


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    content_type = request.content_type or ""
    if request.body and content_type not in ("application/json", ""):
        raise errors.invalid_request("Send the body as JSON with 'Content-Type: application/json'.")
    if not request.body:
        return {}
    if b"\\u0000" in request.body or b"\x00" in request.body:
        # PostgreSQL cannot store a NUL in text or JSON: refuse it here, not with a 500.
        raise errors.invalid_request("The body contains a NUL character (\\u0000).")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise errors.invalid_request(f"The body is not valid JSON: {error}.") from None
    except RecursionError:
        # Deeply nested arrays or objects: a client's mistake, not our 500.
        raise errors.invalid_request("The body's JSON is nested too deeply.") from None
    if not isinstance(body, dict):
        raise errors.invalid_request("The body must be a JSON object.")
    return body


def ok(data: Any, status: int = 200) -> JsonResponse:
    return JsonResponse(
        data, status=status, safe=False, json_dumps_params={"separators": (",", ":")}
    )
