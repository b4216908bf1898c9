"""The request type every dashboard view starts from."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware."""

    htmx: HtmxDetails


def declared_length(request: HttpRequest) -> int:
    """The body's length as the client declared it; 0 when absent, -1 when it is not a
    number (which callers refuse: it is no length)."""
    raw = request.META.get("CONTENT_LENGTH") or "0"
    return int(raw) if raw.isascii() and raw.isdigit() else -1


def sent_in_chunks(request: HttpRequest) -> bool:
    """Whether the body came with a Transfer-Encoding (chunked) instead of a length. Django
    reads no body without a Content-Length, so such a body would be read as none: gunicorn
    hands it on decoded, with the header and without a length."""
    return "HTTP_TRANSFER_ENCODING" in request.META


def local_path(request: HttpRequest, url: str) -> str:
    """`url` if it is a path of this site (where to go next after a form), else "": never
    another host, however written ("//evil", "/\\evil", a scheme), never a NUL."""
    if (
        not url.startswith("/")
        or "\x00" in url
        or not url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return ""
    return url
