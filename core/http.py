"""The request type every dashboard view starts from."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware."""

    htmx: HtmxDetails


def declared_length(request: HttpRequest) -> int:
    """The body's length as the client declared it; 0 when absent, -1 when it is not a
    number (which callers refuse: it is no length)."""
    raw = request.META.get("CONTENT_LENGTH") or "0"
    return int(raw) if raw.isascii() and raw.isdigit() else -1
