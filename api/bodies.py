"""JSON in and out of the API.

Bodies are read strictly (shared/CONTRACT.md): `NaN`, `Infinity`, numbers that overflow a
64-bit integer or a double, lone surrogates, NUL characters and nesting deeper than 64
levels are `400 invalid_request`. Python's json module accepts all of them, and each would
otherwise fail later, where it costs a 500: PostgreSQL refuses NUL and lone surrogates in
text and JSON, SQLite's JSON functions stop at 1,000 levels, and `Infinity` is not JSON
anyone else can read back.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse

from api import errors
from apikeys.scopes import AGENT_NAME, MAX_SCOPED_AGENTS, TOKEN_SHAPED
from core.redact import redact_secrets
from core.strict_json import MAX_DEPTH, JsonRefused, strict_json
from core.token_shape import holds_token_rest

__all__ = [
    "MAX_DEPTH",
    "json_body",
    "looks_like_a_token",
    "ok",
    "strict_json",
    "the_fields_taken",
    "whole_number",
]


def json_body(request: HttpRequest, *, takes: Collection[str] | None = None) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it. With `takes`,
    a field beyond those is refused (the_fields_taken)."""
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
    if takes is not None:
        the_fields_taken(body, takes)
    return body


# A field's name repeated in the refusal only if it reads as one: never a pasted token,
# a line break or a direction override sent back (and on into a client's logs).
_NAME_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_TOKEN_LIKE = re.compile(r"reminix_", re.IGNORECASE)


def the_fields_taken(body: dict[str, Any], takes: Collection[str]) -> None:
    """400 invalid_request for a field the endpoint does not take, naming the one meant
    where it is close (as Stripe's API does). For the writes that make or change a
    credential or an agent: ignored, a typo made a wider credential than was asked for
    (`ttl_seconds`: a token of an hour; `agent`: one for every agent) or deployed an
    empty config (`confg`)."""
    unknown = sorted(field for field in body if field not in takes)
    if not unknown:
        return
    field = unknown[0]
    taken = ", ".join(f"'{name}'" for name in takes)
    if not _NAME_LIKE.fullmatch(field) or _TOKEN_LIKE.search(field):
        raise errors.invalid_request(f"The body has a field this endpoint does not take: {taken}.")
    folded = {name.lower(): name for name in takes}
    meant = difflib.get_close_matches(field.replace("_", "").lower(), folded, n=1, cutoff=0.6)
    hint = f" Did you mean '{folded[meant[0]]}'?" if meant else ""
    raise errors.invalid_request(
        f"The field '{field}' is not one this endpoint takes ({taken}).{hint}"
    )


def string_list(body: dict[str, Any], field: str, *, most: int) -> list[str] | None:
    """An optional list of strings (None when absent), at most `most` of them, each of
    characters that print. A refusal names the item (`agents[1]`) and what is wrong with
    it, never repeating a character that does not print."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise errors.invalid_field_value(field, f"must be a list of at most {most} strings.")
    if len(value) > most:
        raise errors.invalid_field_value(
            field, f"must be a list of at most {most} strings; it has {len(value)}."
        )
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise errors.invalid_field_value(f"{field}[{index}]", "must be a string.")
        odd = next((i for i, char in enumerate(item) if not char.isprintable()), None)
        if odd is not None:
            raise errors.invalid_field_value(
                f"{field}[{index}]",
                f"holds a character that does not print (character {odd + 1}: a line "
                "break, a tab, a control or an invisible one).",
            )
    return value


def looks_like_a_token(name: str) -> bool:
    """Whether an agent's name holds a token: its prefix, or the 36 characters after one (an
    agent name's shape), known by their checksum. Either would be kept and shown with the
    name, a secret to anyone who knows the prefixes."""
    return TOKEN_SHAPED.search(name) is not None or holds_token_rest(name)


def agent_names_param(body: dict[str, Any], field: str) -> list[str] | None:
    """An optional agent scope: a list of agent names, each one name as a whole
    (CONTRACT.md: `^[A-Za-z0-9_-]+$`), None when absent (an empty list is the caller's
    to judge: a key's `[]` is how its answer writes "every agent"). The dashboard's form reads a
    line as names separated by commas and trims them; an API item is taken as sent or
    refused: "a,b" was scoped to two agents, " a" to a, and "" to none, which is every
    agent, a wider token than was asked for."""
    names = string_list(body, field, most=MAX_SCOPED_AGENTS)
    if names is None:
        return None
    for index, name in enumerate(names):
        item = f"{field}[{index}]"
        if not name.strip():
            raise errors.invalid_field_value(
                item, "names no agent. Name one, or leave out the field for every agent."
            )
        # A secret kept as the scope and shown with it.
        if looks_like_a_token(name):
            raise errors.invalid_field_value(
                item, "looks like a Reminix token, not an agent name: revoke it."
            )
        if not AGENT_NAME.fullmatch(name):
            shown = f"“{redact_secrets(name)}”" if len(name) <= 64 else "That entry"
            raise errors.invalid_field_value(
                item,
                f"{shown} is not an agent name: one name of letters, digits, - and _, "
                "without spaces or commas.",
            )
    return list(dict.fromkeys(names))


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
