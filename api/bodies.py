"""JSON in and out of the API.

Bodies are read strictly (shared/CONTRACT.md): `NaN`, `Infinity`, numbers that overflow a
64-bit integer or a double, lone surrogates, NUL characters and nesting deeper than 64
levels are `400 invalid_request`. Python's json module accepts all of them, and each would
otherwise fail later, where it costs a 500: PostgreSQL refuses NUL and lone surrogates in
text and JSON, SQLite's JSON functions stop at 1,000 levels, and `Infinity` is not JSON
anyone else can read back.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.http import HttpRequest, JsonResponse

from api import errors

MAX_DEPTH = 64
_INT_LIMIT = 2**63


class _Refused(ValueError):
    """A value JSON allows in Python but the contract does not."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:20]} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:  # int() itself refuses past 4,300 digits, slowly
        raise _Refused(f"the number {text[:20]}… is too large")
    value = int(text)
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise _Refused(f"the number {text} is too large")
    return value


def _check(value: Any) -> None:
    """No string (key or value) with a lone surrogate or a NUL, and no deeper than
    MAX_DEPTH. Iterative: the point is to refuse deep nesting, not to recurse into it."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _Refused(f"it is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise _Refused("it contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused("it contains a lone surrogate (\\ud800-\\udfff)") from None


def strict_json(data: bytes | str) -> Any:
    """`data` as JSON, strictly (see the module); ValueError with the reason otherwise."""
    value = json.loads(
        data,
        parse_constant=_refuse_constant,
        parse_float=_finite_float,
        parse_int=_bounded_int,
    )
    _check(value)
    return value


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    content_type = request.content_type or ""
    if request.body and content_type not in ("application/json", ""):
        raise errors.invalid_request("Send the body as JSON with 'Content-Type: application/json'.")
    if not request.body:
        return {}
    try:
        body = strict_json(request.body)
    except _Refused as refused:
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


def ok(data: Any, status: int = 200) -> JsonResponse:
    return JsonResponse(
        data, status=status, safe=False, json_dumps_params={"separators": (",", ":")}
    )
