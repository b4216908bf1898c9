"""JSON in and out of the API.

Bodies are read strictly (shared/CONTRACT.md): `NaN`, `Infinity`, numbers that overflow a
64-bit integer or a double, lone surrogates, NUL characters and nesting deeper than 64
levels are `400 invalid_request`. Python's json module accepts all of them, and each would
otherwise fail later, where it costs a 500: PostgreSQL refuses NUL and lone surrogates in
text and JSON, SQLite's JSON functions stop at 1,000 levels, and `Infinity` is not JSON
anyone else can read back.
"""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse

from api import errors
from core.strict_json import MAX_DEPTH, JsonRefused, strict_json

__all__ = ["MAX_DEPTH", "json_body", "ok", "strict_json", "whole_number"]


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    raw = request.body
    if not raw:
        return {}
    if (request.content_type or "") not in ("application/json", ""):
        raise errors.invalid_request("Send the body as JSON with 'Content-Type: application/json'.")
    try:
        body = strict_json(raw)
    except JsonRefused as refused:
        raise errors.invalid_request(f"The body's JSON is refused: {refused}.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise errors.invalid_request(f"The body is not valid JSON: {error}.") from None
    except RecursionError:
        raise errors.invalid_request(
            f"The body's JSON is nested deeper than {MAX_DEPTH} levels."
        ) from None
    if not isinstance(body, dict):
        raise errors.invalid_request("The body must be a JSON object.")
    return body


def whole_number(value: Any) -> int | None:
    """`value` as the integer it is, or None. JSON has one kind of number, and JSON Schema
    (so OpenAPI 3.1, /v1/openapi.json) counts any with no fraction as an integer: 1e3 and
    1000.0 are 1000. Booleans, strings and fractions are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # finite: strict JSON refused NaN and the infinities
    return None


# What JsonResponse(data, safe=False, json_dumps_params={"separators": (",", ":")}) would
# write, made by one encoder for every answer: JsonResponse makes a new encoder per call,
# which costs more than encoding an invoke's answer.
_ENCODER = DjangoJSONEncoder(separators=(",", ":"))


def ok(data: Any, status: int = 200) -> HttpResponse:
    # Handed over as bytes: the encoder writes ASCII (every other character escaped), and a
    # str would make the response parse its Content-Type for a charset to encode it with.
    content = _ENCODER.encode(data).encode("ascii")
    return HttpResponse(content, status=status, content_type="application/json")
