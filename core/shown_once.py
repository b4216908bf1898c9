"""The one response that shows a new secret, and the forms that lead to it.

A form that creates a secret (a token, a webhook's signing secret, recovery codes) may be
submitted once: a reload, a double click, a network retry or the back button must neither
make a second one, which would silently replace what the person just saved or leave a
working credential whose secret nobody saw, nor show the first one again. Each such form
carries a random `form_id`; the session remembers the last few ids that succeeded, each
with what it made (ids and names only, never a secret). The response that carries the
secret is never stored by a cache.

A form sent twice at once (a double click of a plain form sends twice, and the browser
shows only the second answer) is made once too: its view is `@sent_once`, which handles
the POST in one transaction holding the session's row, so the second send waits for the
first and then finds its id (a session is read when its request starts, and written when
it ends: both sends would otherwise find the id unused).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django_htmx.http import reswap, trigger_client_event

from core.http import HtmxHttpRequest
from core.redact import holds_secret

SESSION_KEY = "secret_forms_used"
REMEMBERED = 20
FORM_ID_MAX = 64


def form_id_new() -> str:
    return secrets.token_urlsafe(16)


def form_id_of(request: HttpRequest) -> str:
    """The form's id; "" for none, or for what no form of ours sent (longer than any id
    form_id_new makes, which the session would otherwise keep whatever its size, or a
    token, which it would keep and the page would show back)."""
    form_id = request.POST.get("form_id", "")
    return form_id if len(form_id) <= FORM_ID_MAX and not holds_secret(form_id) else ""


def _used(session: dict[str, object] | HttpRequest) -> dict[str, str]:
    """The forms that made their secret, by id: what each made ("" if not said). Kept as
    [id, made] pairs; a session from before kept ids alone."""
    data = session.session if isinstance(session, HttpRequest) else session
    kept = data.get(SESSION_KEY, [])
    used: dict[str, str] = {}
    for item in kept if isinstance(kept, list) else []:
        if isinstance(item, str):
            used[item] = ""
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(i, str) for i in item):
            used[item[0]] = item[1]
    return used


def _remember(request: HttpRequest, used: dict[str, str]) -> None:
    pairs = [[form_id, made] for form_id, made in used.items()][-REMEMBERED:]
    if request.session.get(SESSION_KEY) != pairs:
        request.session[SESSION_KEY] = pairs


def form_already_used(request: HttpRequest) -> bool:
    """Whether this form already made its secret (see form_used)."""
    form_id = form_id_of(request)
    return bool(form_id) and form_id in _used(request)


def already_sent(
    request: HtmxHttpRequest, *, made: str, advice: str, back: str, changed: str
) -> HttpResponse | None:
    """If this form already made its secret, the answer that says so; else None.

    Nothing is made and no secret is shown (none is kept). The message says what the
    first send made (`made`, as it recorded it, e.g. "created the key “CI” …"; this one
    if it did not) and what to do if nobody copied it (`advice`). A plain POST is sent on
    to the list (`back`), where it stands above what was made. To htmx, the answer swaps
    nothing (the first answer's secret may be on the page, and must stay there until it
    is copied): the message goes where the page's messages go, and the list, on
    `changed`, shows what was made."""
    if not form_already_used(request):
        return None
    made = _used(request)[form_id_of(request)] or made
    messages.info(
        request,
        f"This form was already sent: it {made}. The secret was shown once, then, and is "
        f"not shown again. {advice}",
    )
    if not request.htmx:
        return redirect(back)
    response = render(request, "includes/messages.html", {"oob": True}, status=409)
    return trigger_client_event(reswap(response, "none"), changed)


def form_used(request: HttpRequest, response: HttpResponse, *, made: str = "") -> HttpResponse:
    """`response` shows a new secret: its form may not make another, and no cache keeps it.
    `made` says what it made, for a second send of the form to say (no secret in it)."""
    if form_id := form_id_of(request):
        _remember(request, {**_used(request), form_id: made})
    # The only response that ever carries the secret: no cache, no back-forward cache.
    add_never_cache_headers(response)
    return response


def shown_once(
    request: HtmxHttpRequest, response: HttpResponse, *, changed: str, made: str = ""
) -> HttpResponse:
    """`response` shows a new token (see form_used), and the page's list hears `changed`
    and reloads itself."""
    form_used(request, response, made=made)
    if request.htmx:
        trigger_client_event(response, changed)
    return response


def _session_row(request: HttpRequest) -> AbstractBaseSession | None:
    """This session's row, locked until the transaction ends; None for a session that has
    none (not saved yet, or kept elsewhere than the database)."""
    store = request.session
    if not isinstance(store, DatabaseSessionStore) or not store.session_key:
        return None
    found: AbstractBaseSession | None = (
        store.model.objects.select_for_update().filter(session_key=store.session_key).first()
    )
    return found


def sent_once[**P](
    view: Callable[P, HttpResponse],
) -> Callable[P, HttpResponse]:
    """For the view of a form that makes a secret: its POST runs in one transaction that
    holds the session's row, reads the forms used from the row as it is now, and writes
    there the form it used before the row is let go. The same form sent again while the
    first send is on its way waits for it, then finds it used (already_sent): the first
    send's answer may never be seen (a plain form's double click shows only the second),
    so the second must neither make a secret nor say it made none. A form whose first
    send made nothing (its errors, shown beside it) writes nothing, and makes its secret
    when sent again. Other requests wait for the row only while such a POST runs."""

    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        request = args[0]
        assert isinstance(request, HttpRequest)
        if request.method != "POST":
            return view(*args, **kwargs)
        with transaction.atomic():
            row = _session_row(request)
            stored = request.session.decode(row.session_data) if row is not None else {}
            # What this request read when it started, and what was written since.
            _remember(request, {**_used(request), **_used(stored)})
            response = view(*args, **kwargs)
            if row is not None and request.session.get(SESSION_KEY) != stored.get(SESSION_KEY):
                stored[SESSION_KEY] = request.session[SESSION_KEY]
                row.session_data = request.session.encode(stored)
                row.save(update_fields=["session_data"])
        return response

    return guarded
