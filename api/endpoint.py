"""The frame around every API endpoint: request id, authentication, permission, the error
envelope, and one usage entry per call.

    @api_view(["POST"], permission=Permission.AGENTS)
    def agent_invoke(request: ApiRequest, name: str) -> JsonResponse: ...

Inside a view, raise an ApiError for any refusal; anything else that escapes becomes a
500 `internal_error` with the request id, and the traceback goes to the server log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from functools import wraps
from typing import Any, cast

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.services import NoLongerAMember
from api import errors
from api.authentication import (
    Caller,
    ClientCaller,
    Identified,
    ProjectCaller,
    Surface,
    identify,
    presented_digest,
)
from api.cors import add_cors_headers, cors_preflight, require_allowed_origin
from api.errors import ApiError, error_response, new_request_id
from api.idempotency import idempotent
from api.lookup import Resource
from api.permissions import require_permission
from core import write_behind
from core.client_ip import client_ip
from core.http import declared_length, sent_in_chunks
from core.redact import redact_tokens_escaped
from usage.writer import UsageEntry, usage_defer

logger = logging.getLogger(__name__)

type ApiView = Callable[..., HttpResponse]


class ApiRequest(HttpRequest):
    """An API request after authentication (endpoints that act on no one project)."""

    caller: Caller
    request_id: str
    # The row the endpoint acts on (Endpoint.resource), found with the caller; None if the
    # URL names none that exists.
    resource: object | None
    # The request's Origin is one the caller's project allows (Client API).
    origin_allowed: bool


class ProjectApiRequest(ApiRequest):
    """A request to a project-scoped endpoint: its caller always acts on a project."""

    caller: ProjectCaller


class ClientApiRequest(ProjectApiRequest):
    """A request to the Client API: its caller is a client token."""

    caller: ClientCaller


@dataclass(frozen=True)
class Endpoint:
    """What an endpoint takes: its methods, the permission it needs, which API it is on,
    and whether it acts on one project (which a personal access token names in X-Project)."""

    methods: list[str]
    permission: str | None = None
    surface: Surface = Surface.V1
    project_scoped: bool = True
    resource: Resource | None = None


def api_view(
    methods: list[str],
    *,
    permission: str | None = None,
    surface: Surface = Surface.V1,
    project_scoped: bool = True,
    resource: Resource | None = None,
) -> Callable[[ApiView], ApiView]:
    """Make `view` an API endpoint answering `methods`, for callers with `permission`.
    `resource`: the row of the caller's project it acts on, found with the caller (one
    statement) and handed to the view as request.resource."""
    spec = Endpoint(methods, permission, surface, project_scoped, resource)

    def decorate(view: ApiView) -> ApiView:
        @csrf_exempt
        @wraps(view)
        def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if spec.surface is Surface.CLIENT and request.method == "OPTIONS":
                return cors_preflight(request, spec.methods)
            return _answer(request, view, spec, args, kwargs)

        return endpoint

    return decorate


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Unknown /v1 paths: the envelope, not an HTML 404 (nor a CSRF 403 for a POST)."""
    return _answer(request, None, Endpoint([]), (), {})


# The methods of the Client API's endpoints.
CLIENT_METHODS = ["GET", "POST"]


@csrf_exempt
def client_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Unknown /client paths: the envelope. Their preflight is answered as the Client API's
    are, so that a page on an allowed origin reads the 404 that names its wrong path, not
    "Failed to fetch", as if the network were down."""
    if request.method == "OPTIONS":
        return cors_preflight(request, CLIENT_METHODS)
    return _answer(request, None, Endpoint([], surface=Surface.CLIENT), (), {})


def _answer(
    http_request: HttpRequest,
    view: ApiView | None,
    spec: Endpoint,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> HttpResponse:
    # What the call defers (its execution, its usage entry) leaves in one write.
    with write_behind.batch():
        return _answer_now(http_request, view, spec, args, kwargs)


def _answer_now(
    http_request: HttpRequest,
    view: ApiView | None,
    spec: Endpoint,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> HttpResponse:
    started = time.perf_counter()
    token_digest = ""
    # The frame makes the request an ApiRequest: it sets the id now, the caller below.
    request = cast(ApiRequest, http_request)
    request.request_id = new_request_id()
    caller: Caller | None = None
    identified: Identified | None = None
    try:
        # The token is read first, so that every call it makes is attributed to its key in
        # the usage log, wrong paths and methods included; but the path and the method are
        # answered first, since their answer does not depend on who asks.
        resource = spec.resource

        def look(*, count: bool) -> Identified:
            return identify(
                request,
                surface=spec.surface,
                project_scoped=spec.project_scoped,
                resource=resource,
                resource_value=kwargs.get(resource.url_kwarg) if resource else None,
                count=count,
            )

        identified = look(count=True)
        caller, refusal = identified.caller, identified.refusal
        token_digest = identified.attribute_by
        request.resource, request.origin_allowed = identified.resource, identified.origin_allowed
        if caller is not None:
            request.caller = caller
        # Counted before any refusal, so a revoked key or a wrong path cannot be used to
        # flood the key's log without limit.
        if identified.limits is not None and identified.limits.exceeded:
            raise identified.limits.refusal(time.time())
        if declared_length(request) < 0:
            # gunicorn refuses such a request itself; Django's own server (make run) would
            # pass it on, and reading the body would then fail on int().
            raise errors.invalid_request("The Content-Length header is not a number.")
        if sent_in_chunks(request):
            raise errors.length_required()
        if view is None:
            raise errors.not_found(message=f"No endpoint at {errors.echoed(request.path)}.")
        allowed = _allowed(spec.methods)
        if request.method not in allowed:
            raise ApiError(
                405,
                "invalid_request",
                f"Use {_spelled_out(allowed)} on this endpoint.",
                headers={"Allow": ", ".join(allowed)},
            )
        if caller is not None and refusal is None and _receive(request):
            # Looked at again now that the body is in, as it kept us waiting (_receive): its
            # rate limit was counted on the first look, and is not counted twice.
            identified = replace(look(count=False), limits=identified.limits)
            caller, refusal = identified.caller, identified.refusal
            request.resource = identified.resource
            request.origin_allowed = identified.origin_allowed
            if caller is not None:
                request.caller = caller
        if refusal is not None:
            raise refusal
        assert caller is not None
        if spec.surface is Surface.CLIENT:
            require_allowed_origin(request, caller)
        if spec.permission:
            require_permission(caller, spec.permission)
        response = idempotent(request, caller, lambda: view(request, *args, **kwargs))
        error_code = ""
    except ApiError as refused:
        response, error_code = error_response(refused, request.request_id), refused.code
    except NoLongerAMember:
        # The PAT's person was removed from the project while the call ran, and the change
        # it asked for waited for the removal (accounts.services.member_hold): refused as
        # the next call would be, and nothing of it was written.
        project = caller.project if caller is not None else None
        left = errors.not_a_member(project.slug if project is not None else "")
        response, error_code = error_response(left, request.request_id), left.code
    except (RequestDataTooBig, SuspiciousOperation) as unreadable:
        cannot_read = errors.unreadable_request(unreadable)
        response, error_code = error_response(cannot_read, request.request_id), cannot_read.code
    except (OperationalError, InterfaceError):
        # The database is down, refusing connections or past a timeout (settings: connect,
        # statement and lock timeouts): say so at once, and when to try again. A token that
        # could not be checked never gets a success.
        logger.warning("API request %s: the database did not answer", request.request_id)
        unavailable = errors.service_unavailable()
        response = error_response(unavailable, request.request_id)
        response._has_been_logged = True  # type: ignore[attr-defined]  # (just above)
        error_code = unavailable.code
        if caller is None:
            # Counted on its token all the same, once the database is back.
            token_digest = presented_digest(request)
    except Exception:
        logger.exception("API request %s failed", request.request_id)
        failed = ApiError(
            500,
            "internal_error",
            "Something went wrong on our side. Quote the request id if you contact us.",
        )
        response, error_code = error_response(failed, request.request_id), failed.code
    response["X-Request-Id"] = request.request_id
    response["Cache-Control"] = "no-store"
    if response.status_code == 204:
        # No content, so no type (Django's default is text/html): the same on a replay.
        del response["Content-Type"]
    if response.status_code == 401:
        # RFC 6750: how to authenticate, for clients and proxies that look for it.
        response["WWW-Authenticate"] = 'Bearer realm="reminix"'
    if request.method == "HEAD":
        # As GET, without the body; Content-Length still says what GET would send.
        length = len(response.content)
        response.content = b""
        response["Content-Length"] = str(length)
    if identified is not None and identified.limits is not None:
        for name, value in identified.limits.headers().items():
            response.setdefault(name, value)
    if caller is not None and (expires := _expiring(caller)):
        response["X-Reminix-Token-Expires"] = expires
    if spec.surface is Surface.CLIENT:
        add_cors_headers(request, response, caller)
    try:
        _log_usage(
            request,
            caller,
            response.status_code,
            error_code,
            started,
            kwargs.get("name", ""),
            token_digest,
        )
    except Exception:
        # Logging must never replace the answer.
        logger.exception("usage entry for %s not recorded", request.request_id)
    return response


# A body that took longer than this to arrive has its token looked at again. One sent with
# its headers (nearly every client's) arrives at once, and its call still costs one lookup.
BODY_WAIT_SECONDS = 0.25
_clock = time.monotonic  # (a test's clock)


def _receive(request: HttpRequest) -> bool:
    """Wait for the whole body of a call whose token was found and allowed; True if that
    took longer than BODY_WAIT_SECONDS, and so the token is looked at again. Checked only
    before the body, a token could act long after a revocation, suspension or roll that
    returned while its body was still arriving: a client may send its headers and hold the
    body back for as long as the server waits (gunicorn's timeout, 30 s; without end under
    `make run`), and the holder of a leaked token, keeping a few requests open so, could
    then make a key or deploy an agent once it was revoked. Only such a token waits: a
    client without one (none, made up, refused) is answered on its headers, as before,
    since waiting for its body would let anyone hold every worker until it is killed.
    Read here, within Django's limit of what it reads into memory, it costs nothing the
    view would not spend."""
    if declared_length(request) <= 0:
        return False  # no body (or no length, refused before this is called)
    started = _clock()
    try:
        request.body  # noqa: B018 - read for its effect: Django keeps it for the view
    except RequestDataTooBig:
        return False  # refused (413) when the view reads it, as before: nothing was read
    except UnreadablePostError:
        # The client went away mid-body: nobody reads this answer, and it is no failure of
        # ours to log as one.
        raise errors.invalid_request("The request's body did not arrive whole.") from None
    return _clock() - started > BODY_WAIT_SECONDS


# How long before its expiry a key or PAT starts saying so on every answer.
EXPIRY_NOTICE = timedelta(days=7)


def _expiring(caller: Caller) -> str:
    """When the caller's key or PAT expires, if that is within EXPIRY_NOTICE (else ""): a
    script that has no one reading the dashboard still hears of it. Client tokens live an
    hour by design and say nothing."""
    if caller.client_token is not None:
        return ""
    token = caller.personal_token or caller.api_key
    expires_at = token.expires_at if token is not None else None
    if caller.previous_secret and caller.api_key is not None:
        # The secret a key was rolled from ends with its overlap (or the key, if sooner).
        ends = caller.api_key.previous_expires_at
        expires_at = ends if expires_at is None or ends is None else min(ends, expires_at)
    if expires_at is None:
        return ""
    now = timezone.now()
    if not now < expires_at <= now + EXPIRY_NOTICE:
        return ""
    return expires_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _allowed(methods: list[str]) -> list[str]:
    """An endpoint that answers GET answers HEAD too (RFC 9110)."""
    if "GET" not in methods:
        return methods
    at = methods.index("GET") + 1
    return [*methods[:at], "HEAD", *methods[at:]]


def _spelled_out(methods: list[str]) -> str:
    """The methods as a sentence lists them: POST; GET or HEAD; GET, HEAD or PUT."""
    if len(methods) < 3:
        return " or ".join(methods)
    return f"{', '.join(methods[:-1])} or {methods[-1]}"


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}


def _method(method: str | None) -> str:
    """The method as logged: made-up methods (any length) are one word, OTHER."""
    return method if method in _METHODS else "OTHER"


def _as_logged(text: str) -> str:
    """Text from the request as the log keeps it: no NUL bytes (PostgreSQL refuses them,
    and one bad row would fail the whole batch) and no token, wherever a client put one,
    escaped or not (a path escaped twice is decoded once on its way in)."""
    return redact_tokens_escaped(text).replace("\x00", "")  # (decoding may make one)


def _log_usage(
    request: HttpRequest,
    caller: Caller | None,
    status: int,
    error_code: str,
    started: float,
    agent: str,
    token_digest: str,
) -> None:
    usage_defer(
        UsageEntry(
            created_at=timezone.now(),
            project_id=caller.project.pk if caller and caller.project else None,
            api_key_id=caller.api_key.pk if caller and caller.api_key else None,
            client_token_id=caller.client_token.pk if caller and caller.client_token else None,
            personal_token_id=(
                caller.personal_token.pk if caller and caller.personal_token else None
            ),
            token_kind=caller.kind.value if caller else "",
            method=_method(request.method),
            path=_as_logged(request.path),
            status=status,
            error_code=error_code,
            latency_us=int((time.perf_counter() - started) * 1_000_000),
            ip=client_ip(request) or None,
            user_agent=_as_logged(request.META.get("HTTP_USER_AGENT", "")),
            request_id=request.request_id,  # type: ignore[attr-defined]
            agent=_as_logged(agent),
            token_digest=token_digest,
        )
    )
