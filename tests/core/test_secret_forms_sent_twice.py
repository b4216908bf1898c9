"""A form that makes a secret, sent twice (a double click, a network retry, a reload),
makes it once (core/shown_once.py).

The second send of a plain POST is what the browser then shows: the first send's answer,
with its secret, is dropped. Had the second made a token too, the first would be a working
credential whose secret nobody ever saw. The second send says instead that the form was
already sent and what it made, and where to revoke it; it never shows a secret.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import accounts.views.two_factor
import apikeys.views.api_keys
import apikeys.views.personal_tokens
import webhooks.views
from accounts.models import RecoveryCode, TotpDevice
from accounts.two_factor import enrolment_start, recovery_codes_regenerate
from apikeys.models import ApiKey
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.accounts.test_two_factor import codes_in
from tests.conftest import (
    HTMX,
    THREAD_SECONDS,
    backend_pid,
    finished,
    started_recording,
    waits_for,
)
from webhooks.services import webhook_create

CONCURRENT = "SQLite serialises all writers: concurrency is shown on PostgreSQL."
SECRET = re.compile(r"reminix_(?:sk|pat)_[0-9A-Za-z]{36}|whsec_[A-Za-z0-9_-]{40,}")


@dataclass
class SecretForm:
    """One of the forms that make a secret: where it is sent, what it sends, the view's
    service that makes the secret, and the audit action each one made writes."""

    name: str
    url: str
    data: dict[str, Any]
    module: Any
    service: str
    action: str
    said: str  # what the second send says was done
    before: int = 0  # the audit events of its kind that the setup wrote


def secret_forms(user, project) -> list[SecretForm]:
    key = ApiKey.objects.filter(project=project).first()
    if key is None:
        from apikeys.services import api_key_create

        key, _ = api_key_create(project=project, name="Existing", created_by=user)
    pat, _ = personal_token_create(user=user, name="Existing", permissions=["agents"])
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/existing",
        format="generic",
        min_severity="low",
        created_by=user,
    )
    slug = project.slug
    return [
        SecretForm(
            "api key",
            reverse("apikeys:api_key_create", args=[slug]),
            {"name": "Production", "access": "full", "expiry": "never"},
            apikeys.views.api_keys,
            "api_key_create",
            "api_key.created",
            "created the key “Production”",
        ),
        SecretForm(
            "api key roll",
            reverse("apikeys:api_key_roll", args=[slug, key.pk]),
            {"overlap": "24h", "replacing": key.hint},
            apikeys.views.api_keys,
            "api_key_roll",
            "api_key.rolled",
            "rolled “Existing”",
        ),
        SecretForm(
            "personal access token",
            reverse("apikeys:personal_token_create"),
            {"name": "Laptop CLI", "access": "full", "expiry": "30", "reach": "all"},
            apikeys.views.personal_tokens,
            "personal_token_create",
            "personal_token.created",
            "created the token “Laptop CLI”",
        ),
        SecretForm(
            "personal access token regenerate",
            reverse("apikeys:personal_token_regenerate", args=[pat.pk]),
            {"expiry": "7", "replacing": pat.hint},
            apikeys.views.personal_tokens,
            "personal_token_regenerate",
            "personal_token.regenerated",
            "regenerated “Existing”",
        ),
        SecretForm(
            "webhook",
            reverse("webhooks:webhook_create", args=[slug]),
            {"url": "https://hooks.example.com/new", "format": "generic", "min_severity": "low"},
            webhooks.views,
            "webhook_create",
            "webhook.created",
            "added the endpoint https://hooks.example.com.",
        ),
        SecretForm(
            "webhook secret roll",
            reverse("webhooks:webhook_secret_roll", args=[slug, endpoint.pk]),
            {},
            webhooks.views,
            "webhook_secret_roll",
            "webhook.secret_rolled",
            "rolled the signing secret of https://hooks.example.com.",
        ),
    ]


FORMS = [
    "api key",
    "api key roll",
    "personal access token",
    "personal access token regenerate",
    "webhook",
    "webhook secret roll",
]


def the_form(user, project, name: str) -> SecretForm:
    form = next(f for f in secret_forms(user, project) if f.name == name)
    form.before = AuditEvent.objects.filter(action=form.action).count()
    return form


def made(form: SecretForm) -> int:
    """How many secrets the form's sends made."""
    return AuditEvent.objects.filter(action=form.action).count() - form.before


@pytest.mark.parametrize("name", FORMS)
def test_the_same_form_sent_again_makes_nothing_and_says_what_the_first_send_made(
    signed_in, user, project, name
):
    form = the_form(user, project, name)
    data = {**form.data, "form_id": "once"}
    first = signed_in.post(form.url, data)
    assert first.status_code in (200, 201), first.content.decode()[:2000]
    shown = SECRET.search(first.content.decode()).group(0)
    again = signed_in.post(form.url, data, follow=True)
    assert made(form) == 1
    page = again.content.decode()
    assert again.status_code == 200
    assert shown not in page and SECRET.search(page) is None
    assert "This form was already sent" in page
    assert form.said in page


@pytest.mark.parametrize("name", FORMS)
def test_the_same_form_sent_again_by_htmx_leaves_the_panel_and_says_so_beside_it(
    signed_in, user, project, name
):
    """The first answer's secret may be on the page: the second answer must not replace
    it. It is swapped nowhere (HX-Reswap: none); its note goes to the page's messages."""
    form = the_form(user, project, name)
    data = {**form.data, "form_id": "once"}
    signed_in.post(form.url, data, headers=HTMX)
    again = signed_in.post(form.url, data, headers=HTMX)
    assert again.status_code == 409
    assert again["HX-Reswap"] == "none"
    html = again.content.decode()
    assert 'id="messages"' in html and 'hx-swap-oob="true"' in html
    assert "This form was already sent" in html and SECRET.search(html) is None
    assert made(form) == 1


@pytest.mark.parametrize("name", FORMS)
def test_a_second_tabs_form_has_its_own_id_and_makes_its_own(signed_in, user, project, name):
    form = the_form(user, project, name)
    if "replacing" in form.data:
        pytest.skip("a roll's second form names the secret it replaces: test_roll covers it")
    signed_in.post(form.url, {**form.data, "form_id": "tab-1"})
    data = {**form.data, "form_id": "tab-2"}
    if name == "api key":
        data["name"] = "Staging"
    if name == "webhook":
        data["url"] = "https://hooks.example.com/other"
    second = signed_in.post(form.url, data)
    assert second.status_code in (200, 201)
    assert SECRET.search(second.content.decode())
    assert made(form) == 2


@pytest.mark.parametrize("name", ["api key", "personal access token", "webhook"])
def test_a_form_refused_for_its_errors_makes_its_secret_once_fixed(signed_in, user, project, name):
    """Its first send made nothing, so the same form sent again, fixed, makes it."""
    form = the_form(user, project, name)
    broken = {**form.data, "form_id": "fix-me"}
    broken["url" if name == "webhook" else "name"] = ""
    assert signed_in.post(form.url, broken).status_code == 422
    fixed = signed_in.post(form.url, {**form.data, "form_id": "fix-me"})
    assert fixed.status_code == 201 and SECRET.search(fixed.content.decode())
    assert made(form) == 1


def first_send_paused(monkeypatch, module, service):
    """`module.service` pauses its first call (the first send, within its request) until
    `go` is set; its later calls run at once. Returns (reached, go, pid)."""
    reached, go, seen = threading.Event(), threading.Event(), {}
    real = getattr(module, service)
    first = threading.Lock()

    def paused(*args, **kwargs):
        if first.acquire(blocking=False):
            seen["pid"] = backend_pid()
            reached.set()
            go.wait(timeout=THREAD_SECONDS)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, service, paused)
    return reached, go, seen


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", FORMS)
def test_one_form_sent_twice_at_once_makes_one_secret(user, project, monkeypatch, name, headers):
    """A double click of a plain form: the browser sends twice and shows the second answer.
    The second waits for the first (which holds this browser's session row) and then says
    it was already sent; it neither makes a second secret nor answers an error."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    form = the_form(user, project, name)
    first = Client()
    first.force_login(user)
    second = Client()
    second.cookies = first.cookies  # one browser, one session
    data = {**form.data, "form_id": "double-click"}
    reached, go, seen = first_send_paused(monkeypatch, form.module, form.service)
    answers: dict[str, Any] = {}
    one, one_failed = started_recording(
        lambda: answers.update(first=first.post(form.url, data, headers=headers))
    )
    assert reached.wait(timeout=THREAD_SECONDS)
    two, two_failed = started_recording(
        lambda: answers.update(second=second.post(form.url, data, headers=headers))
    )
    try:
        waited = waits_for(seen["pid"], two)
    finally:
        go.set()
        finished(one, two)
    assert one_failed == [] and two_failed == []
    assert made(form) == 1
    assert waited, "the second send did not wait for the first"
    assert answers["first"].status_code in (200, 201)
    again = answers["second"]
    assert again.status_code == (409 if headers else 302)
    assert SECRET.search(again.content.decode()) is None
    if not headers:
        page = second.get(again["Location"]).content.decode()
        assert "This form was already sent" in page and form.said in page


def enrolled(user) -> None:
    enrolment_start(user)
    TotpDevice.objects.filter(user=user).update(confirmed_at=timezone.now())
    recovery_codes_regenerate(user, ip=None)


@pytest.mark.django_db(transaction=True)
def test_new_recovery_codes_sent_twice_at_once_are_made_once(user, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    enrolled(user)  # its first set (one regeneration)
    first = Client()
    first.force_login(user)
    second = Client()
    second.cookies = first.cookies
    url = reverse("accounts:recovery_codes_new")
    data = {"form_id": "double-click"}
    reached, go, seen = first_send_paused(
        monkeypatch, accounts.views.two_factor, "recovery_codes_regenerate"
    )
    answers: dict[str, Any] = {}
    one, one_failed = started_recording(lambda: answers.update(first=first.post(url, data)))
    assert reached.wait(timeout=THREAD_SECONDS)
    two, two_failed = started_recording(lambda: answers.update(second=second.post(url, data)))
    try:
        waited = waits_for(seen["pid"], two)
    finally:
        go.set()
        finished(one, two)
    assert one_failed == [] and two_failed == []
    assert waited
    assert answers["first"].status_code == 200 and answers["second"].status_code == 302
    assert AuditEvent.objects.filter(action="user.recovery_codes_regenerated").count() == 2
    assert len(codes_in(answers["first"].content.decode())) == 10
    assert RecoveryCode.objects.filter(user=user).count() == 10


def form_tag(html: str, action: str) -> str:
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>', html)
    assert found, f"no form sent to {action}"
    return found.group(0)


@pytest.mark.parametrize("name", FORMS)
def test_a_secret_form_cannot_be_clicked_again_while_it_is_on_its_way(
    signed_in, user, project, name
):
    """The client's half: its button is disabled while it is sent (htmx's forms by
    hx-disabled-elt, the plain ones by app.js), so a double click sends once."""
    form = the_form(user, project, name)
    shown_at = form.url
    if name == "webhook secret roll":
        shown_at = form.url.removesuffix("roll-secret/")
    tag = form_tag(signed_in.get(shown_at).content.decode(), form.url)
    if "hx-post" in tag:
        assert 'hx-disabled-elt="find button[type=submit]"' in tag
    else:
        assert "data-send-once" in tag


def test_the_recovery_code_forms_cannot_be_clicked_again_while_on_their_way(signed_in, user):
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(reverse("accounts:account_security")).content.decode()
    assert "data-send-once" in form_tag(page, reverse("accounts:totp_confirm"))
    enrolled(user)
    page = signed_in.get(reverse("accounts:account_security")).content.decode()
    assert "data-send-once" in form_tag(page, reverse("accounts:recovery_codes_new"))
