"""Forms that create a secret may be submitted once: a reload, a double click or the back
button must neither mint a second token nor show the first one again.

Each such form carries a random `form_id`; the session remembers the last few ids that
succeeded (ids only, never a token).
"""

from __future__ import annotations

import secrets

from django.http import HttpRequest

SESSION_KEY = "secret_forms_used"
REMEMBERED = 20


def form_id_new() -> str:
    return secrets.token_urlsafe(16)


def form_id_of(request: HttpRequest) -> str:
    return request.POST.get("form_id", "")


def form_was_used(request: HttpRequest) -> bool:
    form_id = form_id_of(request)
    return bool(form_id) and form_id in request.session.get(SESSION_KEY, [])


def form_mark_used(request: HttpRequest) -> None:
    if form_id := form_id_of(request):
        used = request.session.get(SESSION_KEY, [])
        request.session[SESSION_KEY] = [*used, form_id][-REMEMBERED:]
