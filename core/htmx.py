"""One URL for a whole page and, to htmx, the part of it that changes.

The filter pages (a key's calls, the usage overview, the audit logs) are plain GET forms
and links that htmx merely speeds up: without JavaScript the same URL answers the whole
page. django-htmx's example project does the same: one view, the fragment a
{% partialdef %} of the page's own template.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect, push_url

from core.http import HtmxHttpRequest
from core.redact import holds_secret

SECRET_IN_FILTERS = (
    "That was a whole token, not an id, and it was not searched for or kept. A client "
    "token's id starts with ctok_. To find out which token it is, paste it into “Found a "
    "token?” on the project's Alerts page: it is compared by its fingerprint there."
)


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """htmx asked, and not to restore a page from history (which needs the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_page_or_fragment(
    request: HtmxHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    fragment: str,
    valid: bool,
    address: str | None = None,
    fragment_context: dict[str, Any] | None = None,
) -> HttpResponse:
    """The whole page, or to htmx only its `fragment` (with `fragment_context` added).

    `valid`: the filters were understood. A whole page that could not be answered says so
    (400); to htmx it is a 200, so that the errors are swapped in beside their fields.
    `address`: the tidy URL of what was asked, for the address bar (htmx pushes it only
    when valid: after an error the address keeps the last page that was shown).
    """
    as_fragment = wants_fragment(request)
    if as_fragment:
        template = f"{template}#{fragment}"
        context = {**context, **(fragment_context or {})}
    status = 400 if not valid and not request.htmx else 200
    response = render(request, template, context, status=status)
    if request.htmx and address is not None:
        push_url(response, address if valid else False)
    # The same URL answers a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def url_with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def filters_without_secrets[R: HttpResponseBase](
    view: Callable[..., R],
) -> Callable[..., R | HttpResponse]:
    """A filter page asked with a whole token in its query (a client token pasted into the
    box for a client token's id) is opened again without it, saying why: a token is not
    searched for, written back into the form, or left in the address bar and so in the
    browser's history. With htmx too, by a redirect: nothing of it is pushed."""

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> R | HttpResponse:
        pasted = {
            name
            for name, values in request.GET.lists()
            if any(holds_secret("".join(value.split())) for value in values)
        }
        if not pasted:
            return view(request, *args, **kwargs)
        kept = request.GET.copy()
        for name in pasted:
            del kept[name]
        address = url_with_query(request.path, kept.urlencode())
        messages.warning(request, SECRET_IN_FILTERS)
        if request.htmx:
            return HttpResponseClientRedirect(address)
        return redirect(address)

    return wrapped
