"""How django-axes counts sign-in failures and what a locked-out person sees."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from axes.handlers.database import AxesDatabaseHandler
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils.crypto import salted_hmac

from core.client_ip import client_ip
from core.networks import address_block
from core.redact import controls_escaped, may_hold_token, redact_tokens_escaped
from core.validators import no_secret

if TYPE_CHECKING:
    from django.http.request import _ImmutableQueryDict


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """Count failures per email however it is capitalised, as accounts store it lowercase.

    django-axes keeps what this returns in clear in its table, and people type their
    password into the email box: what is not an email address (no account can have it) is
    counted under a keyed hash of it instead, so it is still counted as itself and never
    kept. The audit trail keeps only what looks like an email for the same reason."""
    raw = (credentials or {}).get("username") or request.POST.get("username", "")
    typed = str(raw).strip().lower()
    try:
        validate_email(typed)
        no_secret(typed)  # a token can be written as an address's first part
    except ValidationError:
        if not typed:
            return typed
        digest = salted_hmac(_NOT_AN_EMAIL, typed, algorithm="sha256").hexdigest()
        return f"{_NOT_AN_EMAIL}:{digest}"
    return typed


# No email address reads like this (no @), so no account's count is ever shared with it.
_NOT_AN_EMAIL = "not-an-email"


def lockout_address(request: HttpRequest) -> str:
    """The address failures are counted against: the client's IPv4 address, or the /64 an
    IPv6 client is in, written as its first address. One host usually has a whole /64 to
    pick from, so counted per address a host could try a few passwords on every account
    (a password spray) and never be locked out; the sign-up and reset limits count a /64
    as one for the same reason (core.networks.address_block). An address, not the
    network's text, because django-axes keeps it in an IP address column."""
    address = client_ip(request)
    if not address:
        return address  # none to count against (axes counts the email alone)
    block = address_block(address)
    if "/" in block:
        return str(ipaddress.ip_network(block).network_address)
    return block


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The sign-in page again, with a message that reads the same whether or not the email
    has an account."""
    from accounts.forms import SignInForm

    form = SignInForm(request, data=None)
    response = render(
        request,
        "accounts/login.html",
        {"form": form, "locked_out": True},
        status=429,
    )
    response["Retry-After"] = "900"
    return response


# What django-axes copies from the request's headers into its text columns, with their
# columns' lengths (axes cuts each to its column before this sees it).
_KEPT_FROM_HEADERS = (("axes_user_agent", 255), ("axes_http_accept", 1025), ("axes_path_info", 255))


class StoredTextAxesHandler(AxesDatabaseHandler):
    """django-axes' own handler, keeping what it stores of a sign-in failure as the usage
    log and the audit trail keep a request's text: its User-Agent, Accept and path, and the
    query string and form fields it copies (its `get_data`, `post_data`), with tokens cut,
    plain or percent-escaped (core.redact), and control characters escaped. The table keeps
    a failure for the cool-off and the Django admin shows it: a token pasted into a header
    (`curl -A`), a link's query or a field a client added was kept whole. And PostgreSQL
    refuses NUL in text: one in a header made signing in a 500 (Django's own server passes
    such a header on; gunicorn refuses it before Django sees it)."""

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        _kept_as_text(request)
        with _query_and_fields_without_tokens(request):
            super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        _kept_as_text(request)
        super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        _kept_as_text(request)
        super().user_logged_out(sender, request, user, **kwargs)


def _kept_as_text(request: HttpRequest | None) -> None:
    for name, longest in _KEPT_FROM_HEADERS:
        value = getattr(request, name, None)
        if isinstance(value, str):
            setattr(request, name, controls_escaped(redact_tokens_escaped(value))[:longest])


@contextmanager
def _query_and_fields_without_tokens(request: HttpRequest | None) -> Iterator[None]:
    """The request's query and form fields, while django-axes copies them, with any token
    in a name or value cut (axes masks the password and AXES_SENSITIVE_PARAMETERS by name
    alone). Nearly always nothing to cut, and the request is left as it came."""
    if request is None:
        yield
        return
    as_sent = request.GET, request.POST
    cut = _without_tokens(request.GET), _without_tokens(request.POST)
    if cut == (None, None):
        yield
        return
    request.GET, request.POST = cut[0] or as_sent[0], cut[1] or as_sent[1]
    try:
        yield
    finally:
        request.GET, request.POST = as_sent


def _without_tokens(query: QueryDict) -> _ImmutableQueryDict | None:
    """A copy of `query` with tokens cut from its names and values, as immutable as the
    request's own; None if none holds one."""
    if not any(may_hold_token(text) for name, values in query.lists() for text in (name, *values)):
        return None
    copy = QueryDict(mutable=True)
    for name, values in query.lists():
        copy.setlist(redact_tokens_escaped(name), [redact_tokens_escaped(v) for v in values])
    copy._mutable = False
    return cast("_ImmutableQueryDict", copy)
