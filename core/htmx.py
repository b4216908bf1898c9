"""One URL for a whole page and, to htmx, the part of it that changes.

The filter pages (a key's calls, the usage overview, the audit logs) are plain GET forms
and links that htmx merely speeds up: without JavaScript the same URL answers the whole
page. django-htmx's example project does the same: one view, the fragment a
{% partialdef %} of the page's own template.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, overload
from urllib.parse import unquote

from django.http import HttpResponse, HttpResponseBase, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect, push_url

from core.http import HtmxHttpRequest
from core.redact import holds_secret


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


def render_panel(
    request: HtmxHttpRequest,
    template: str,
    panel: str | None,
    context: dict[str, Any],
    *,
    page: Callable[[], dict[str, Any]],
    status: int = 200,
) -> HttpResponse:
    """A list page with its dialog `panel` open (a form, or what it answered), or to htmx
    only that panel, a {% partialdef %} of `template`. `page` gives the rest of the whole
    page's context: it is read only when the whole page is sent. A restore from htmx's
    history gets the whole page, as every other page here does (wants_fragment)."""
    if wants_fragment(request) and panel:
        return render(request, f"{template}#{panel}", context, status=status)
    return render(request, template, {**page(), "panel": panel, **context}, status=status)


def url_with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


# Where a filter page, opened again without the token pasted into it, finds which of its
# filters held one (their names only), to say so once beside them.
PASTED_SESSION_KEY = "tokens_pasted_into"


def _holds_token(text: str) -> bool:
    # Spaces a copy brings, or a line break, within it: holds_secret reads it whole.
    return holds_secret("".join(text.split()))


def without_tokens(address: str) -> str:
    """`address` (a path and its query) less each parameter whose name or a value holds
    a whole token, for an address that a page writes into itself (a hidden field, a
    link), as the sudo prompt does; as it is when none does."""
    path, _, query = address.partition("?")
    given = QueryDict(query)
    if not any(
        _holds_token(name) or any(_holds_token(value) for value in values)
        for name, values in given.lists()
    ):
        return address
    kept = QueryDict(mutable=True)
    for name, values in given.lists():
        if not _holds_token(name) and (clean := [v for v in values if not _holds_token(v)]):
            kept.setlist(name, clean)
    return url_with_query(path, kept.urlencode())


def page_without_tokens(address: str) -> str | None:
    """`address` without_tokens, for a page a later one names (sign-in's `next`); None
    when its path holds a token (one pasted into the address bar as a project), of which
    nothing can be kept."""
    if _holds_token(unquote(address.partition("?")[0])):
        return None
    return without_tokens(address)


type _View[R: HttpResponseBase] = Callable[..., R]
type _Guarded[R: HttpResponseBase] = Callable[..., R | HttpResponse]


@overload
def filters_without_secrets[R: HttpResponseBase](view: _View[R], /) -> _Guarded[R]: ...
@overload
def filters_without_secrets[R: HttpResponseBase](
    *, page: str
) -> Callable[[_View[R]], _Guarded[R]]: ...
def filters_without_secrets[R: HttpResponseBase](
    view: _View[R] | None = None, /, *, page: str | None = None
) -> _Guarded[R] | Callable[[_View[R]], _Guarded[R]]:
    """A filter page asked with a whole token in its query is opened again without it
    (303; htmx: HX-Redirect, so nothing of it is swapped in or pushed). Not searched for
    and not shown back is not enough: the address is the browser's history, its address
    bar, the Referer sent onward and the server's access log. The page says once, beside
    its filters, that a token was pasted and not kept (`request.tokens_pasted_into`, the
    filters' names; templates/includes/token_pasted.html). A dialog that GET opens (a key's
    rename, roll…: a page of its own without JavaScript) is guarded the same way.

    Only a GET (or HEAD) is sent elsewhere: a 303 would turn a form sent by POST into a
    GET and drop what it carried. Our forms post to their own plain address, without a
    query, and a POST from elsewhere is refused without the CSRF token.

    `page`: the URL name of the page to open instead, taking the view's own arguments: an
    export's page (`@filters_without_secrets(page="usage:project_calls")`). The export
    itself, downloaded without that filter, held more rows than were asked for, and a
    file has nowhere to say why.

    Put it before login_required: the sign-in page's ?next= would otherwise hold it.
    Someone signed out is sent on without the note: no session is written for them."""

    def guard(view: _View[R]) -> _Guarded[R]:
        @wraps(view)
        def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> R | HttpResponse:
            asked = request.method in ("GET", "HEAD")
            pasted = [
                name
                for name, values in (request.GET.lists() if asked else [])
                if _holds_token(name) or any(_holds_token(value) for value in values)
            ]
            if not pasted:
                request.tokens_pasted_into = _pasted_here_before(request)  # type: ignore[attr-defined]
                return view(request, *args, **kwargs)
            kept = request.GET.copy()
            for name in pasted:
                del kept[name]
            path = reverse(page, args=args, kwargs=kwargs) if page else request.path
            address = url_with_query(path, kept.urlencode())
            # A name that is itself a token is not kept either: "" stands for it.
            names = sorted({"" if _holds_token(name) else name for name in pasted})
            # Noted for the person whose page it is: for anyone signed out, each such GET
            # would store a session row (the sign-in page follows without the note).
            if request.user.is_authenticated:
                request.session[PASTED_SESSION_KEY] = {"path": path, "fields": names}
            if request.htmx:
                return HttpResponseClientRedirect(address)
            return HttpResponseSeeOther(address)

        return wrapped

    return guard(view) if view is not None else guard


def _pasted_here_before(request: HtmxHttpRequest) -> frozenset[str]:
    """The filters of this page that held a token the last time it was asked: said once."""
    noted = request.session.get(PASTED_SESSION_KEY)
    if not isinstance(noted, dict) or noted.get("path") != request.path:
        return frozenset()
    del request.session[PASTED_SESSION_KEY]
    return frozenset(str(name) for name in noted.get("fields", []))


class HttpResponseSeeOther(HttpResponseRedirect):
    """303: the page to GET instead (what Django's redirect() answers is 302)."""

    status_code = 303
