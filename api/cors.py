"""CORS for the Client API, and only for it: browsers on a project's allowed origins may
call /client/… with that project's client tokens. /v1 never sends CORS allow headers, so
no browser page can read a /v1 answer.

A preflight carries no token, so it cannot say which project it is for: it is answered
for an origin that some project allows. The real request then carries the token, and its
Origin must be one that the token's own project allows, or it is refused (403) before
the agent runs, and without CORS headers, so the page cannot read even the refusal.
A refusal that names no project (no token, a made-up one, an API key) is readable by the
origins the preflight answers: the page must tell "mint a new token" from a network error.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from accounts.models import AllowedOrigin
from api import errors
from api.authentication import ORIGIN_SHAPE, Caller
from api.errors import error_response, new_request_id

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSED_HEADERS = (
    "X-Request-Id, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
    "Idempotent-Replayed"
)
PREFLIGHT_MAX_AGE = "600"

logger = logging.getLogger(__name__)


def _origin(request: HttpRequest) -> str:
    return request.META.get("HTTP_ORIGIN", "").strip().lower()


def _project_allows(request: HttpRequest, caller: Caller | None) -> bool:
    # Read with the caller, in the same statement (api/lookup.py): no query of its own.
    return caller is not None and bool(getattr(request, "origin_allowed", False))


def _some_project_allows(origin: str) -> bool:
    return (
        ORIGIN_SHAPE.fullmatch(origin) is not None
        # A deleted project's rows stay (accounts.services.project_delete): not its origins.
        and AllowedOrigin.objects.filter(origin=origin, project__deleted_at__isnull=True).exists()
    )


def cors_preflight(request: HttpRequest, methods: list[str]) -> HttpResponse:
    """OPTIONS: allow an origin that some project allows; refuse every other."""
    origin = _origin(request)
    request_id = new_request_id()
    response: HttpResponse
    try:
        allows = bool(methods) and _some_project_allows(origin)
    except (OperationalError, InterfaceError):
        # Outside the frame (api.endpoint) that says so for every other call: the
        # envelope's 503 and when to try again, not Django's HTML 500.
        logger.warning("API preflight %s: the database did not answer", request_id)
        response = error_response(errors.service_unavailable(), request_id)
        response._has_been_logged = True  # type: ignore[attr-defined]  # (just above)
    else:
        if allows:
            response = HttpResponse(status=204)
            del response["Content-Type"]  # no content (as the frame's 204s)
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Methods"] = ", ".join(methods)
            response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        else:
            response = error_response(
                errors.insufficient_permissions("This origin may not call the Client API."),
                request_id,
            )
    response["Vary"] = "Origin"
    response["X-Request-Id"] = request_id
    # As every API answer (the browser keeps a preflight by Access-Control-Max-Age alone).
    response["Cache-Control"] = "no-store"
    return response


def require_allowed_origin(request: HttpRequest, caller: Caller) -> None:
    """A browser request (it has an Origin) must come from one of the project's origins."""
    origin = _origin(request)
    if origin and not _project_allows(request, caller):
        # Named only if it can be one: a header of megabytes is not written back.
        named = f"The origin {origin}" if ORIGIN_SHAPE.fullmatch(origin) else "This origin"
        raise errors.insufficient_permissions(
            f"{named} is not allowed for this project. Add it under Settings → "
            "General → Client API: allowed browser origins."
        )


def add_cors_headers(request: HttpRequest, response: HttpResponse, caller: Caller | None) -> None:
    origin = _origin(request)
    response["Vary"] = "Origin"
    if origin and (_project_allows(request, caller) or _readable_refusal(origin, caller)):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def _readable_refusal(origin: str, caller: Caller | None) -> bool:
    """A call that named no project (its token was missing, made up or not a client token)
    is readable by the origins whose preflight is answered. It holds nothing of a project,
    and without it a page could not tell a token to replace from a network that is down."""
    if caller is not None:
        return False
    try:
        return _some_project_allows(origin)
    except (OperationalError, InterfaceError):
        return False  # the refusal stands; only the page's reading of it is lost
