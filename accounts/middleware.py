"""Keep signed-in pages out of every cache, the browser's back-forward cache included."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

from accounts.sessions import session_seen


class NoStoreForSignedInMiddleware:
    """Pages for a signed-in user carry their projects, keys and usage: never store them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Cache-Control first: the API sets its own, and must not pay the session and user
        # queries that reading request.user would cost.
        if "Cache-Control" in response:
            return response
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response


class SessionSeenMiddleware:
    """Notes a signed-in session as seen (accounts/sessions.py), at most every 5 minutes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            session_seen(request)
        return self.get_response(request)
