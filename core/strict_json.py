"""Strict JSON for bodies sent to us: `NaN`, `Infinity`, numbers that overflow a 64-bit
integer or a double, lone surrogates, NUL characters, nesting deeper than 64 levels and a
name given twice in one object are refused. Python's json module accepts all of them, and
most would otherwise fail later, where it costs a 500: PostgreSQL refuses NUL and lone
surrogates in text and JSON, SQLite's JSON functions stop at 1,000 levels, and `Infinity` is
not JSON anyone else can read back. A name given twice is read by some the first time, by
Python the last: two readers of one body, two different answers.

Used by the API (api/bodies.py) and by the passkey endpoints (accounts/views/passkeys.py).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
_INT_LIMIT = 2**63


class JsonRefused(ValueError):
    """A value JSON allows in Python but the contract does not."""


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:20]} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:  # int() itself refuses past 4,300 digits, slowly
        raise JsonRefused(f"the number {text[:20]}… is too large")
    value = int(text)
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise JsonRefused(f"the number {text} is too large")
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
                raise JsonRefused(f"it is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise JsonRefused("it contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused("it contains a lone surrogate (\\ud800-\\udfff)") from None


# A name repeated in the refusal only if it reads as one (never a pasted token or a line
# break sent back).
_NAME_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose names are each given once. Python keeps the last of two, other
    parsers (and whatever reads the body before or after us: a proxy, a log) the first:
    `{"agents": ["support"], "agents": []}` read as two different scopes (I-JSON, RFC
    7493, refuses it)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = ""
        for name, _ in pairs:
            if name in seen:
                twice = name
                break
            seen.add(name)
        shown = f"'{twice}'" if _NAME_LIKE.fullmatch(twice) else "a name"
        raise JsonRefused(f"an object gives {shown} twice")
    return value


# Made once: json.loads() with these hooks makes a new decoder on every call, which costs
# more than reading a small body.
_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
    parse_int=_bounded_int,
    object_pairs_hook=_object,
)


def strict_json(data: bytes | str) -> Any:
    """`data` as JSON, strictly (see the module); ValueError with the reason otherwise."""
    if isinstance(data, bytes):
        # As json.loads() reads bytes: UTF-8, -16 or -32, a BOM allowed.
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    value = _DECODER.decode(data)
    _check(value)
    return value
