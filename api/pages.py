"""The API reference page (/docs/api/): the OpenAPI document (api/openapi/) rendered on
the server, for people. Readable without signing in; no script, nothing from elsewhere."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from api.openapi import openapi_document
from api.openapi.schemas import ERROR_CODES, ERROR_TITLES, Schema

# How deep nested fields are spelled out (`data[].execution.id`).
MAX_DEPTH = 3
TOKEN_VARIABLES = {
    "apiKey": "$REMINIX_API_KEY",
    "personalAccessToken": "$REMINIX_PAT",
    "clientToken": "$CLIENT_TOKEN",
}
AUTH_LABELS = {
    "apiKey": "API key",
    "personalAccessToken": "personal access token",
    "clientToken": "client token",
}
_CODE_SPAN = re.compile(r"`([^`]+)`")


def prose(text: str) -> SafeString:
    """The document's text as HTML: escaped, with its `code spans` as <code>."""
    return mark_safe(_CODE_SPAN.sub(r"<code>\1</code>", escape(text)))  # noqa: S308


@dataclass(frozen=True)
class Field:
    """A parameter, or a field of a body, as the page lists it."""

    name: str
    type: str
    required: bool
    description: SafeString
    rules: list[str]
    where: str = ""


@dataclass(frozen=True)
class Answer:
    """An answer an operation can give, with the fields of its body."""

    status: str
    description: SafeString
    fields: list[Field]
    headers: list[Field]
    is_error: bool


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the page shows it."""

    anchor: str
    method: str
    path: str
    summary: str
    description: SafeString
    auth: str
    permission: str
    parameters: list[Field]
    body: list[Field]
    body_required: bool
    answers: list[Answer]
    errors: list[str]
    example: str


@dataclass(frozen=True)
class Section:
    """The operations of one tag of the document."""

    anchor: str
    name: str
    description: SafeString
    operations: list[Operation]


@dataclass(frozen=True)
class ErrorCode:
    """One of the contract's error codes, and when it is answered."""

    status: int
    title: str
    code: str
    when: SafeString


def _resolve(schema: Schema) -> tuple[str, Schema]:
    """The schema a $ref names, and that name ("" when it is not a reference)."""
    reference = schema.get("$ref", "")
    if not reference:
        return "", schema
    name = reference.rsplit("/", 1)[-1]
    section = reference.split("/")[2]
    return name, openapi_document()["components"][section][name]


def _type(schema: Schema) -> str:
    name, schema = _resolve(schema)
    if "allOf" in schema and "type" not in schema:
        return _type(schema["allOf"][0])
    if name and schema.get("type") == "object":
        return name
    kinds = schema.get("type")
    if kinds is None:
        return "any JSON"
    if isinstance(kinds, list):
        return " or ".join(kinds)
    if kinds == "array":
        return f"array of {_type(schema.get('items', {}))}"
    return str(kinds)


def _rules(schema: Schema) -> list[str]:
    _, schema = _resolve(schema)
    if "allOf" in schema:
        base = [rule for part in schema["allOf"] for rule in _rules(part)]
        return base + (["no Reminix token prefix in it"] if "not" in schema else [])
    rules = []
    if "enum" in schema:
        rules.append("one of " + ", ".join(map(str, schema["enum"])))
    for key, label in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "from {}"),
        ("maximum", "to {}"),
        ("minItems", "at least {} items"),
        ("pattern", "matches {}"),
        ("default", "default {}"),
    ):
        if key in ("minLength", "minItems") and schema.get(key) == 1:
            rules.append("not empty")
        elif key in schema:
            value = schema[key]
            rules.append(label.format(json.dumps(value) if key == "default" else value))
    return rules


def _fields(schema: Schema, prefix: str = "", depth: int = 0) -> list[Field]:
    """The fields of an object schema, nested ones spelled `a.b` and `a[].b`."""
    _, schema = _resolve(schema)
    rows: list[Field] = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        _, resolved = _resolve(prop)
        rows.append(
            Field(
                name=prefix + name,
                type=_type(prop),
                required=name in required,
                description=prose(prop.get("description") or resolved.get("description", "")),
                rules=[] if resolved.get("type") == "object" else _rules(prop),
            )
        )
        if depth + 1 >= MAX_DEPTH:
            continue
        if resolved.get("properties"):
            rows += _fields(resolved, f"{prefix}{name}.", depth + 1)
        elif resolved.get("type") == "array":
            rows += _fields(resolved.get("items", {}), f"{prefix}{name}[].", depth + 1)
    return rows


def _parameter(parameter: Schema) -> Field:
    return Field(
        name=parameter["name"],
        type=_type(parameter["schema"]),
        required=bool(parameter.get("required")),
        description=prose(parameter.get("description", "")),
        rules=_rules(parameter["schema"]),
        where=parameter["in"],
    )


def _auth(operation: Schema) -> str:
    schemes = [name for option in operation["security"] for name in option]
    if not schemes:
        return "none"
    labels = [AUTH_LABELS[name] for name in schemes]
    x_project = any(p.get("name") == "X-Project" for p in operation.get("parameters", []))
    if "personalAccessToken" in schemes and x_project:
        labels[schemes.index("personalAccessToken")] += " with X-Project"
    return " or ".join(labels)


def _example(base_url: str, method: str, path: str, operation: Schema) -> str:
    """A curl command that makes the call, with the documented examples filled in."""
    url = path
    headers = []
    for parameter in operation.get("parameters", []):
        example = parameter.get("example")
        if parameter["in"] == "path":
            url = url.replace("{" + parameter["name"] + "}", str(example or parameter["name"]))
        elif parameter["in"] == "header" and parameter.get("required"):
            headers.append(f"{parameter['name']}: {example or '…'}")
        elif parameter["in"] == "header" and parameter["name"] == "Access-Control-Request-Method":
            headers.append(f"{parameter['name']}: {'POST' if 'invoke' in path else 'GET'}")
    lines = [f"curl -X {method.upper()} {base_url}{url}"]
    security = [name for option in operation["security"] for name in option]
    if security:
        lines.append(f'-H "Authorization: Bearer {TOKEN_VARIABLES[security[0]]}"')
    lines += [f'-H "{header}"' for header in headers]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "example" in body:
        lines.append('-H "Content-Type: application/json"')
        lines.append(f"-d '{json.dumps(body['example'], ensure_ascii=False)}'")
    return " \\\n  ".join(lines)


def _answer(status: str, answer: Schema) -> Answer:
    _, answer = _resolve(answer)
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    is_error = status.startswith(("4", "5"))
    headers = [
        Field(
            name=name,
            type=_type(_resolve(header)[1]["schema"]),
            required=bool(_resolve(header)[1].get("required")),
            description=prose(_resolve(header)[1].get("description", "")),
            rules=[],
        )
        for name, header in answer.get("headers", {}).items()
        if name != "X-Request-Id"
    ]
    return Answer(
        status=status,
        description=prose(answer["description"]),
        fields=_fields(schema) if schema and not is_error else [],
        headers=headers,
        is_error=is_error,
    )


def _operation(base_url: str, method: str, path: str, operation: Schema) -> Operation:
    body = operation.get("requestBody")
    body_schema = body["content"]["application/json"]["schema"] if body else {}
    answers = [_answer(status, answer) for status, answer in operation["responses"].items()]
    return Operation(
        anchor=operation["operationId"],
        method=method.upper(),
        path=path,
        summary=operation["summary"],
        description=prose(operation["description"]),
        auth=_auth(operation),
        permission=operation.get("x-permission", ""),
        parameters=[_parameter(p) for p in operation.get("parameters", [])],
        body=_fields(body_schema),
        body_required=bool(body and body["required"]),
        answers=[answer for answer in answers if not answer.is_error],
        errors=[answer.status for answer in answers if answer.is_error],
        example=_example(base_url, method, path, operation),
    )


def reference_sections(base_url: str) -> list[Section]:
    """The document's operations, grouped by tag in the document's order of tags."""
    document = openapi_document()
    by_tag: dict[str, list[Operation]] = {tag["name"]: [] for tag in document["tags"]}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            by_tag[operation["tags"][0]].append(_operation(base_url, method, path, operation))
    return [
        Section(
            anchor="tag-" + tag["name"].lower().replace(" ", "-"),
            name=tag["name"],
            description=prose(tag["description"]),
            operations=by_tag[tag["name"]],
        )
        for tag in document["tags"]
    ]


@cache
def error_codes() -> list[ErrorCode]:
    return [
        ErrorCode(status=status, title=ERROR_TITLES[status], code=code, when=prose(when))
        for status, codes in ERROR_CODES.items()
        for code, when in codes.items()
    ]


@require_GET
def api_reference(request: HttpRequest) -> HttpResponse:
    """The reference, from the same document /v1/openapi.json serves."""
    base_url = request.build_absolute_uri("/").rstrip("/")
    document: dict[str, Any] = openapi_document()
    return render(
        request,
        "api/reference.html",
        {
            "description": prose(document["info"]["description"]),
            "version": document["info"]["version"],
            "sections": reference_sections(base_url),
            "schemes": [
                {
                    "name": AUTH_LABELS[name],
                    "format": scheme["bearerFormat"],
                    "description": prose(scheme["description"]),
                }
                for name, scheme in document["components"]["securitySchemes"].items()
            ],
            "errors": error_codes(),
            "base_url": base_url,
        },
    )
