"""One URL for a whole page and, to htmx, the part of it that changes.

The filter pages (a key's calls, the usage overview, the audit logs) are plain GET forms
and links that htmx merely speeds up: without JavaScript the same URL answers the whole
page. django-htmx's example project does the same: one view, the fragment a
{% partialdef %} of the page's own template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, HttpResponseBase, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import Resolver404, ResolverMatch, resolve, reverse
from django.utils.cache import patch_vary_headers
from django.utils.encoding import escape_uri_path
from django.utils.http import escape_leading_slashes
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
    """Whether `text` holds a whole token: with the spaces a copy brings, or a line break,
    within it (holds_secret reads it without them), and percent-escaped
    ("reminix%5Fsk%5F…", which a query's one decoding leaves so), as the logs read it
    (core.redact.redact_tokens_escaped)."""
    for _ in range(4):
        if holds_secret("".join(text.split())):
            return True
        if "%" not in text:
            return False
        text = unquote(text)
    return False


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
    nothing can be kept, but for an invitation's link, whose path is its token."""
    if _path_holds_token(unquote(urlsplit(address).path)):
        return None
    # A fragment is no parameter (without_tokens splits at "?" only): one that holds a
    # token goes whole, one that does not is the page's own place.
    address, hash_, fragment = address.partition("#")
    kept = without_tokens(address)
    return f"{kept}#{fragment}" if hash_ and not _holds_token(fragment) else kept


def _path_holds_token(path: str) -> bool:
    """Whether `path` (decoded) holds a token that is not its page's own: an invitation's
    link is /invitations/reminix_inv_…/, and a token of another kind there is pasted."""
    if not _holds_token(path):
        return False
    try:
        match = resolve(path)
    except Resolver404:
        return True
    token = str(match.kwargs.get("token", ""))
    invitation = "reminix_inv_"
    if match.url_name == "invitation_accept" and token.lower().startswith(invitation):
        # Nor a token pasted onto its end (reminix_inv_reminix_sk_…): its own is base62.
        return _holds_token(path.replace(token, "")) or _holds_token(token[len(invitation) :])
    return True


type _View[R: HttpResponseBase] = Callable[..., R]

# The attribute pasted_token_opens() puts on a view (functools.wraps carries it outward).
_OPENS = "pasted_token_opens"


def pasted_token_opens[R: HttpResponseBase](page: str) -> Callable[[_View[R]], _View[R]]:
    """For an export: a token pasted into its query opens `page` (a URL name taking the
    view's own arguments) without it, not the export. Downloaded without that filter,
    the file held more rows than were asked for, and a file has nowhere to say why."""

    def mark(view: _View[R]) -> _View[R]:
        setattr(view, _OPENS, page)
        return view

    return mark


def address_without_tokens(request: HtmxHttpRequest) -> HttpResponse | None:
    """Where a dashboard GET (or HEAD) with a whole token in its address is sent instead,
    or None when its address holds none (PastedTokensMiddleware; every page, from one
    place). Not searched for and not shown back is not enough: the address is the
    browser's history, its address bar, the Referer sent onward and the access log.

    - A parameter whose name or a value holds one is left out (303; htmx: HX-Redirect, so
      nothing of it is swapped in or pushed), the others kept. `next` (an address the page
      goes to afterwards) is kept without the token, as sign-in follows it
      (page_without_tokens). A filter page says once, beside its filters, that a token
      was pasted and not kept (`request.tokens_pasted_into`, the filters' names;
      templates/includes/token_pasted.html). An export opens its page instead
      (pasted_token_opens).
    - A path holding one (pasted where a project's slug or a key's id goes) has nothing
      to keep: the browser goes home, and a signed-in person is told why. The one path
      that is its token by design, an invitation's link (reminix_inv_…), is answered.

    Only a GET (or HEAD) is sent elsewhere: a 303 would turn a form sent by POST into a
    GET and drop what it carried. Our forms post to their own plain address, without a
    query, and a POST from elsewhere is refused without the CSRF token. Before any view
    and its login_required: the sign-in page's ?next= would otherwise hold it. Someone
    signed out is sent on without the note: no session or cookie is written for them."""
    if request.method not in ("GET", "HEAD"):
        return None
    if _path_holds_token(request.path_info):
        return _home_without_token(request)
    pasted = [name for name, values in request.GET.lists() if _pasted(name, values)]
    if not pasted:
        return None
    kept = QueryDict(mutable=True)
    for name, values in request.GET.lists():
        if name not in pasted:
            kept.setlist(name, values)
        elif name == "next" and (after := [v for v in map(page_without_tokens, values) if v]):
            kept.setlist(name, after)
    try:
        match: ResolverMatch | None = resolve(request.path_info)
    except Resolver404:
        match = None
    page = getattr(match.func, _OPENS, None) if match else None
    if page and match:
        path = reverse(page, args=match.args, kwargs=match.kwargs)
        address = url_with_query(path, kept.urlencode())
    else:
        path = request.path
        # The path as it was asked, escaped again: decoded, "/a%3Fb/" read as "/a?b/" (the
        # rest a query), and "//evil.example/" as another site (Django's APPEND_SLASH
        # redirect escapes its leading slashes the same way).
        address = url_with_query(escape_leading_slashes(escape_uri_path(path)), kept.urlencode())
    # A name that is itself a token is not kept either: "" stands for it.
    names = sorted({"" if _holds_token(name) else name for name in pasted})
    # Noted for the person whose page it is: for anyone signed out, each such GET
    # would store a session row (the sign-in page follows without the note).
    if request.user.is_authenticated:
        request.session[PASTED_SESSION_KEY] = {"path": path, "fields": names}
    return _sent_to(request, address)


def _pasted(name: str, values: list[str]) -> bool:
    if _holds_token(name):
        return True
    if name == "next":  # an address of this site, where an invitation's link is its token
        return any(page_without_tokens(value) != value for value in values)
    return any(_holds_token(value) for value in values)


def _home_without_token(request: HtmxHttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        messages.warning(
            request,
            "A secret token was in the address you opened: it was removed. "
            "If it is yours, consider rolling it.",
        )
    return _sent_to(request, reverse("home"))


def _sent_to(request: HtmxHttpRequest, address: str) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(address)
    return HttpResponseSeeOther(address)


def pasted_here_before(request: HtmxHttpRequest) -> frozenset[str]:
    """The filters of this page that held a token the last time it was asked: said once.
    Read only from a session that exists (the note is written to signed-in ones alone)."""
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return frozenset()
    return _pasted_here_before(request)


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
