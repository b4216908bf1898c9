"""The one response that shows a new secret, and the forms that lead to it.

A form that creates a secret (a token, a webhook's signing secret, recovery codes) may be
submitted once: a reload, a double click or the back button must neither make a second
one, which would silently replace what the person just saved, nor show the first one
again. Each such form carries a random `form_id`; the session remembers the last few ids
that succeeded (ids only, never a secret). The response that carries the secret is never
stored by a cache.
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


def form_already_used(request: HttpRequest) -> bool:
    """Whether this form already made its secret (see form_used)."""
    form_id = form_id_of(request)
    return bool(form_id) and form_id in request.session.get(SESSION_KEY, [])


def already_shown(request: HttpRequest, *, noun: str) -> bool:
    """Whether this form already made its token. If so, says so: the token is not shown
    again and no second one is made."""
    if not form_already_used(request):
        return False
    messages.info(
        request,
        f"That {noun} was already created and shown once. If you did not copy it, revoke it "
        "and create a new one.",
    )
    return True


def form_used(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """`response` shows a new secret: its form may not make another, and no cache keeps it."""
    if form_id := form_id_of(request):
        used = request.session.get(SESSION_KEY, [])
        request.session[SESSION_KEY] = [*used, form_id][-REMEMBERED:]
    # The only response that ever carries the secret: no cache, no back-forward cache.
    add_never_cache_headers(response)
    return response


def shown_once(request: HtmxHttpRequest, response: HttpResponse, *, changed: str) -> HttpResponse:
    """`response` shows a new token (see form_used), and the page's list hears `changed`
    and reloads itself."""
    form_used(request, response)
    if request.htmx:
        trigger_client_event(response, changed)
    return response
