"""API calls take a path of their own through Django: none of the dashboard's middleware.

Sessions, messages, CSRF, user authentication, django-axes, CSP nonces, htmx and static
files are the dashboard's; a /v1 or /client call is authenticated by its bearer token in
the @api_view frame, and pays for none of them. After only the probes, the forwarded
scheme's check and the user agent's note (settings.MIDDLEWARE), this answers API paths
straight from the API's own URLconf (settings.API_URLCONF) and hands every other request
on down the dashboard's chain.

What an API answer still carries from Django's security middleware, it adds itself:
`X-Content-Type-Options: nosniff`, and HSTS over https in production. A call over plain
http in production is refused (403 https_required), never redirected: the token already
crossed in clear, and a client that follows redirects would hide that from its owner.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

from api import errors
from api.endpoint import api_not_found, client_not_found
from api.errors import error_response, new_request_id
from core.redact import may_hold_token

API_PREFIXES = ("/v1/", "/client/")
# Paths whose match each worker keeps: a client calls the same few (one per agent and
# endpoint) over and over. A longer path is matched each time, so the kept paths and
# their arguments stay near a megabyte at most, whatever paths anyone sends.
MATCHES_KEPT = 1024
MATCH_KEPT_UP_TO = 200  # characters of a path

type Match = tuple[Callable[..., HttpResponse], tuple[Any, ...], dict[str, Any]]


def is_api_path(path: str) -> bool:
    """/v1 and /client, and what reads as them but for a doubled slash (a base URL with a
    trailing slash): the envelope's 404, not the dashboard's HTML (a POST: its CSRF page)."""
    if path.startswith(API_PREFIXES) or path in ("/v1", "/client"):
        return True
    return path.startswith("//") and is_api_path("/" + path.lstrip("/"))


class ApiMiddleware:
    """Answers /v1 and /client before any of the dashboard's middleware runs (see the module)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # The API URLconf's includes ("v1/", "client/"), each asked directly for the path
        # less its leading slash: the match the URLconf's root would find, without a
        # resolver (and a ResolverMatch) of its own on every call.
        self.resolvers = get_resolver(settings.API_URLCONF).url_patterns
        # The URLconf's answer depends on the path alone: each path is matched once.
        self._kept_match = lru_cache(maxsize=MATCHES_KEPT)(self._match)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        response = self._refusal(request) or self._view_response(request)
        response["X-Content-Type-Options"] = "nosniff"
        if settings.SECURE_HSTS_SECONDS and request.is_secure():
            hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                hsts += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                hsts += "; preload"
            response.setdefault("Strict-Transport-Security", hsts)
        return response

    def _view_response(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info[1:]
        # A path that may hold a token (pasted where an agent's name goes) is not kept:
        # no token stays in a cache, the worker's memory included.
        if len(path) <= MATCH_KEPT_UP_TO and not may_hold_token(path):
            match = self._kept_match(path)
        else:
            match = self._match(path)
        if match is not None:
            view, args, kwargs = match
            return view(request, *args, **kwargs)
        # "/v1" and "/client" themselves: the envelope's 404, not a redirect to the slash.
        if request.path_info.lstrip("/").startswith("client"):
            return client_not_found(request)
        return api_not_found(request)

    def _match(self, path: str) -> Match | None:
        """The view of `path` (less its leading slash) and its arguments, or None. (A
        ResolverMatch weighs more than the match it stands for: the view and its
        arguments are what a call needs.)"""
        for resolver in self.resolvers:
            try:
                match = resolver.resolve(path)
            except Resolver404:
                continue
            if match is not None:  # (a path() of its own answers None, not Resolver404)
                return match.func, match.args, match.kwargs
        return None

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        """What is refused before a token is even read, in the envelope: an unknown Host
        (Django's own answer would be an HTML page), and plain http in production."""
        try:
            request.get_host()
        except DisallowedHost:
            return _envelope(errors.invalid_request("This server does not answer for that Host."))
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return _envelope(
                errors.ApiError(
                    403,
                    "https_required",
                    "Call the API over https. This request crossed the network in clear: "
                    "if it carried a token, revoke that token and make a new one.",
                )
            )
        return None


def _envelope(error: errors.ApiError) -> HttpResponse:
    request_id = new_request_id()
    response = error_response(error, request_id)
    response["X-Request-Id"] = request_id
    response["Cache-Control"] = "no-store"
    return response
