"""Dashboard middleware of our own that belongs to no app."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import Error, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers
from django.utils.functional import SimpleLazyObject

from core.client_ip import is_trusted_proxy, trusted_networks
from core.htmx import address_without_tokens, pasted_here_before
from core.http import HtmxHttpRequest

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class ProbeMiddleware:
    """GET or HEAD /healthz and /readyz, for a load balancer or an orchestrator, answered
    before any other middleware: a probe is sent over plain http to the instance's own
    address, which ALLOWED_HOSTS does not name and SECURE_SSL_REDIRECT would redirect; it
    carries no session, no token and meets no limit. /healthz does no I/O: this process
    answers. /readyz asks the database for one `SELECT 1`: 503 while it cannot answer.
    Neither says why, or anything else about what is inside."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in ("/healthz", "/readyz") or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if path == "/readyz" and not database_answers():
            answer = HttpResponse(
                "unavailable\n", content_type="text/plain; charset=utf-8", status=503
            )
            answer["Retry-After"] = str(RETRY_AFTER_SECONDS)
            # Not Django's ERROR line for a 5xx, once per probe for an outage's length: the
            # balancer acts on the answer, and the access log has it.
            answer._has_been_logged = True  # type: ignore[attr-defined]
        else:
            answer = HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
        answer["Cache-Control"] = "no-store"
        return answer


def database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Error:  # any of the database's: unreachable, refused, timed out
        return False
    return True


class ForwardedProtoMiddleware:
    """X-Forwarded-Proto believed only from our own proxies. Production believes it
    (SECURE_PROXY_SSL_HEADER), which by itself would let a client that reaches gunicorn
    directly say https: its token crossing in clear unrefused (api.middleware), a page
    answered over http with no redirect. Once TRUSTED_PROXIES names the proxies, the
    header is dropped from any other peer's request. First in MIDDLEWARE, so the API's
    path takes it too; without TRUSTED_PROXIES it is not in the chain at all, and the
    header is believed as before (check --deploy warns, core.W004)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.networks = trusted_networks()
        if not self.networks:
            raise MiddlewareNotUsed

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if "HTTP_X_FORWARDED_PROTO" in meta and not is_trusted_proxy(
            meta.get("REMOTE_ADDR") or "", self.networks
        ):
            del meta["HTTP_X_FORWARDED_PROTO"]
        return self.get_response(request)


class NoStoreMiddleware:
    """No dashboard answer is stored, signed in or not. Signed in, a page carries the
    person's projects, keys and usage; signed out, the pages a link opens (an invitation,
    an address to confirm) name a person and a project under a URL that is itself the
    secret, and every page carries a CSRF token and its CSP nonce, which a stored copy
    would hand out again. An answer that says how it may be kept (the API's, a view's
    own) keeps its word; static files are answered before this runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            add_never_cache_headers(response)
        return response


class BrowserFeaturesMiddleware:
    """The headers Django's SecurityMiddleware has no setting for. Permissions-Policy
    (settings.PERMISSIONS_POLICY) turns off the browser features no page of ours uses, so
    a script that got in anyway cannot ask for them; Cross-Origin-Resource-Policy keeps
    another origin from loading a page as an image or a script (a side channel on what
    it holds). Static files are answered before this runs and stay loadable anywhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.permissions_policy = ", ".join(
            f"{feature}=({' '.join(allowed)})"
            for feature, allowed in settings.PERMISSIONS_POLICY.items()
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.permissions_policy)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response


class DatabaseBusyMiddleware:
    """A page whose database work could not be done just now (the database unreachable,
    a statement past its timeout, a row another change held past the lock timeout, a
    deadlock PostgreSQL broke) answers 503 with Retry-After and a page that says to try
    again, not 500 "something went wrong": nothing is wrong with the request, and the
    same click a few seconds later goes through. The API answers these itself (503
    service_unavailable, api/endpoint.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        return database_busy_page(request, exception)


def database_busy_page(request: HttpRequest, exception: Exception) -> HttpResponse:
    """503 with Retry-After and the page that says to try again in a moment, logged as
    one WARNING line: the connection's traceback, on every page while the database is
    away, tells nothing more."""
    logger.warning(
        "%s %s: the database could not answer (%s)",
        request.method,
        request.path,
        type(exception.__cause__ or exception).__name__,
    )
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own log_response
    return response


class MethodNotAllowedPageMiddleware:
    """An address that only takes a form's POST, opened as a page (typed, bookmarked,
    or reloaded from the address bar where a form sent without JavaScript landed): the
    dashboard's page saying there is nothing to open there and nothing was changed, not
    Django's empty 405, which browsers show as their own "HTTP ERROR 405". Status and
    Allow header stay; htmx's error alert reads the page's words (static/js/app.js).
    The API answers 405 in the contract's envelope itself, before this runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.streaming or response.content:
            return response
        opened = request.method in ("GET", "HEAD")  # else a form sent where none is taken
        page = render(request, "405.html", {"opened": opened}, status=405)
        page["Allow"] = response["Allow"]
        return page


class PastedTokensMiddleware:
    """A dashboard page asked with a token in its address (a filter, any parameter,
    `next`, a segment of its path) is opened again without it, whichever page it is
    (core.htmx.address_without_tokens): one place, not a decorator each page must
    remember. After the session, the user and htmx's details, which it reads; before
    any view. The API's paths are answered before the dashboard's middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        asked: HtmxHttpRequest = request  # type: ignore[assignment]  # HtmxMiddleware ran
        sent_on = address_without_tokens(asked)
        if sent_on is not None:
            return sent_on
        # Read only by the filter pages that say so (templates/includes/token_pasted.html).
        request.tokens_pasted_into = SimpleLazyObject(  # type: ignore[attr-defined]
            lambda: pasted_here_before(asked)
        )
        return self.get_response(request)
