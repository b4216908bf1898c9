"""What every dashboard answer needs about the person signed in: their session noted as
seen, and sign-in asked for as a whole page, even by htmx."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import MAX_URL_LENGTH
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from accounts.sessions import session_seen
from core.htmx import page_without_tokens


class SessionSeenMiddleware:
    """Notes a signed-in session as seen (accounts/sessions.py), at most every 5 minutes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            session_seen(request)
        return self.get_response(request)


class HtmxSignInMiddleware:
    """A session that ended while its page was open (signed out in another tab, expired):
    the next htmx request is redirected to sign in, and the XMLHttpRequest would follow
    that redirect and swap the sign-in page into the dialog or list that asked. htmx is
    told instead to load the sign-in page as a whole page, coming back afterwards to the
    page the person was on (not to the fragment's address). A region that reloads itself
    on a timer (X-Background-Refresh) is left to stop and say so (static/js/app.js):
    nobody clicked anything, so the page is not taken away from under them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or response.status_code != 302 or "X-Background-Refresh" in request.headers:
            return response
        login = resolve_url(settings.LOGIN_URL)
        if urlsplit(response["Location"]).path != login:
            return response
        back = _back_to(request, htmx)
        sign_in = redirect_to_login(back, login)["Location"] if back else login
        return HttpResponseClientRedirect(sign_in)


def _back_to(request: HttpRequest, htmx: HtmxDetails) -> str | None:
    """The page the person was on (HX-Current-URL, of this site only), else the request's
    own address, else its path: the first whose quoted form fits an address (MAX_URL_LENGTH);
    None when none does, and sign-in comes back to the start. django-htmx reads the header
    with urlsplit, which raises ValueError on a bracket without its pair, and a header
    anyone can send may hold 8 KB of "%" that quote to three times that, past the 16,384
    characters Django redirects to: neither is a 500 or a 400."""
    try:
        current = htmx.current_url_abs_path
    except ValueError:
        current = None
    return first_that_fits(current, request.get_full_path(), request.path)


def first_that_fits(*pages: str | None) -> str | None:
    """The first of `pages` whose quoted form fits an address (MAX_URL_LENGTH), for the
    sign-in address's `next`; None when none does. The sign-in page writes `next` into its
    form and its links, and a token is never written to a later page: a page is named
    without each parameter of its query that holds one, and a page whose path holds one
    (pasted into the address bar) is passed over (core.htmx.page_without_tokens)."""
    for page in pages:
        kept = page_without_tokens(page) if page else None
        if kept and len(quote(kept, safe="/")) <= MAX_URL_LENGTH:
            return kept
    return None


def next_without_tokens(url: str) -> str:
    """A `next` given to the sign-in or sign-up page (a hand-made link's; ours come from
    first_that_fits), which writes it into its form and its links and goes there
    afterwards: without a token, or "" when its path holds one. An invitation's link is
    the exception, whose path is its token: sign-in and sign-up come back to it to
    accept (core.htmx.page_without_tokens, which the dashboard's middleware also asks of
    a `next` in any page's address)."""
    return page_without_tokens(url) or ""
