"""The one response that shows a new token, and the forms that lead to it.

A form that creates a secret may be submitted once: a reload, a double click or the back
button must neither mint a second token nor show the first one again. Each such form
carries a random `form_id`; the session remembers the last few ids that succeeded (ids
only, never a token). The response that carries the token is never stored by a cache.
"""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers
from django_htmx.http import trigger_client_event

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


def already_shown(request: HttpRequest, *, noun: str) -> bool:
    """Whether this form already made its token. If so, says so: the token is not shown
    again and no second one is made."""
    form_id = form_id_of(request)
    if not form_id or form_id not in request.session.get(SESSION_KEY, []):
        return False
    messages.info(
        request,
        f"That {noun} was already created and shown once. If you did not copy it, revoke it "
        "and create a new one.",
    )
    return True


def shown_once(request: HtmxHttpRequest, response: HttpResponse, *, changed: str) -> HttpResponse:
    """`response` shows a new token: its form may not make another, no cache keeps it, and
    the page's list hears `changed` and reloads itself."""
    if form_id := form_id_of(request):
        used = request.session.get(SESSION_KEY, [])
        request.session[SESSION_KEY] = [*used, form_id][-REMEMBERED:]
    # The only response that ever carries the token: no cache, no back-forward cache.
    add_never_cache_headers(response)
    if request.htmx:
        trigger_client_event(response, changed)
    return response
