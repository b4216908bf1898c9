"""Every dashboard form that writes, fed the review's odd values in each field in turn
(NUL bytes, 5,000 characters, "²" and huge numbers where digits go, year 9999, a token):
an error beside the field or a success, never a 500 (issue 10). On PostgreSQL this found a
5,000-character sign-in email reaching django-axes' 255-character column."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.conftest import PASSWORD

ODD_VALUES = [
    "\x00",
    "a\x00b",
    "x" * 5000,
    "²",
    "99999999999999999999999",
    "9" * 5000,
    "-1",
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "é",
    "\t",
    "NaN",
    "reminix_sk_" + "A" * 36,
]


def signed_in_forms(project, key):
    membership = project.memberships.get().pk  # the notification settings' fields name it
    return [
        (
            reverse("apikeys:api_key_create", args=[project.slug]),
            {
                "name": "n",
                "access": "restricted",
                "permissions": ["read"],
                "expiry": "date",
                "expires_on": "2030-01-01",
                "form_id": "f",
            },
        ),
        (reverse("apikeys:api_key_rename", args=[project.slug, key.pk]), {"name": "n"}),
        (
            reverse("apikeys:personal_token_create"),
            {
                "name": "n",
                "access": "full",
                "expiry": "date",
                "expires_on": "2030-01-01",
                "projects": [str(project.pk)],
                "form_id": "f",
            },
        ),
        (reverse("accounts:project_settings", args=[project.slug]), {"name": "n"}),
        (
            reverse("accounts:project_origins", args=[project.slug]),
            {"origins": "https://a.example.com"},
        ),
        (
            reverse("accounts:project_invitation_send", args=[project.slug]),
            {"email": "a@example.com", "role": "member"},
        ),
        (reverse("accounts:project_create"), {"name": "n"}),
        (
            reverse("accounts:password_change"),
            {"old_password": "x", "new_password1": "y", "new_password2": "y"},
        ),
        # The forms the first table left out (found by walking every URL pattern).
        (
            reverse("apikeys:api_key_roll", args=[project.slug, key.pk]),
            {"overlap": "3600", "form_id": "f", "replacing": str(key.pk)},
        ),
        (reverse("apikeys:api_key_suspend", args=[project.slug, key.pk]), {"reason": "r"}),
        (
            reverse("usage:api_key_networks", args=[project.slug, key.pk]),
            {"networks": "10.0.0.0/8"},
        ),
        (
            reverse("accounts:project_key_policy", args=[project.slug]),
            {"max_key_days": "30", "max_pat_days": "30", "leaked_key_action": "revoke"},
        ),
        (
            reverse("accounts:project_two_factor_policy", args=[project.slug]),
            {"require_two_factor": "on"},
        ),
        (reverse("accounts:project_delete", args=[project.slug]), {"confirm": "n"}),
        (
            reverse("alerts:alert_rules", args=[project.slug]),
            {
                "burst_failures": "10",
                "burst_minutes": "5",
                "spike_factor": "3",
                "unused_days": "90",
            },
        ),
        (reverse("alerts:token_lookup", args=[project.slug]), {"token": "reminix_sk_x"}),
        (
            reverse("webhooks:webhook_create", args=[project.slug]),
            {
                "url": "https://hooks.example.com/x",
                "format": "generic",
                "min_severity": "high",
                "form_id": "f",
            },
        ),
        (
            reverse("notifications:preferences"),
            {f"alerts_{membership}": "on", f"expiry_{membership}": "on"},
        ),
        (reverse("accounts:account_email"), {"email": "b@example.com"}),
    ]


def personal_token_forms(pat):
    return [
        (reverse("apikeys:personal_token_rename", args=[pat.pk]), {"name": "n"}),
        (reverse("apikeys:personal_token_networks", args=[pat.pk]), {"networks": "10.0.0.0/8"}),
        (
            reverse("apikeys:personal_token_regenerate", args=[pat.pk]),
            {
                "expiry": "date",
                "expires_on": "2030-01-01",
                "form_id": "f",
                "replacing": str(pat.pk),
            },
        ),
    ]


@pytest.mark.parametrize("odd", ODD_VALUES)
def test_every_signed_in_form_takes_odd_input_without_a_500(signed_in, user, project, api_key, odd):
    from apikeys.services import personal_token_create

    pat, _ = personal_token_create(user=user, name="CLI")
    for url, data in signed_in_forms(project, api_key[0]) + personal_token_forms(pat):
        for field in list(data):
            d = dict(data)
            d[field] = [odd] if isinstance(data[field], list) else odd
            r = signed_in.post(url, d)
            assert r.status_code < 500, (url, field, odd[:20], r.status_code)
            r = signed_in.post(url, d, headers={"HX-Request": "true"})
            assert r.status_code < 500, (url, field, odd[:20], r.status_code)
            # The field sent twice, as a list where one value goes.
            d[field] = [*(data[field] if isinstance(data[field], list) else [data[field]]), odd]
            r = signed_in.post(url, d)
            assert r.status_code < 500, (url, field, odd[:20], "repeated", r.status_code)


@pytest.mark.parametrize("odd", ODD_VALUES)
def test_sign_in_sign_up_and_reset_take_odd_input_without_a_500(client, db, odd):
    for url, data in [
        (reverse("accounts:login"), {"username": "a@example.com", "password": "p"}),
        (
            reverse("accounts:signup"),
            {
                "name": "n",
                "email": "b@example.com",
                "password1": "a long pass phrase 1",
                "password2": "a long pass phrase 1",
            },
        ),
        (reverse("accounts:password_reset"), {"email": "c@example.com"}),
    ]:
        for field in list(data):
            d = dict(data)
            d[field] = odd
            r = client.post(url, d)
            assert r.status_code < 500, (url, field, odd[:20], r.status_code)


ODD_HEADER_VALUES = ["\x00", "a\x00b", "x" * 5000, "²", "é", "reminix_sk_" + "A" * 36]


@pytest.mark.parametrize("value", ODD_HEADER_VALUES)
@pytest.mark.parametrize("header", ["User-Agent", "Accept"])
def test_signing_in_takes_odd_header_values_without_a_500(client, user, header, value):
    """django-axes keeps the User-Agent and Accept of each failure (and kept them of each
    sign-in, before AXES_DISABLE_ACCESS_LOG): on PostgreSQL, which refuses NUL in text, a
    NUL in either made signing in a 500, with the right password or a wrong one."""
    from axes.models import AccessAttempt

    login = reverse("accounts:login")
    wrong = client.post(
        login, {"username": user.email, "password": "wrong"}, headers={header: value}
    )
    assert wrong.status_code == 200
    assert AccessAttempt.objects.filter(username=user.email).exists()
    right = client.post(
        login, {"username": user.email, "password": PASSWORD}, headers={header: value}
    )
    assert right.status_code == 302
    assert AuditEvent.objects.filter(action="user.signed_in", actor=user).exists()


def test_a_token_pasted_into_any_field_is_not_written_back(signed_in, user, project, make_key):
    """The contract: a token is never written to a later page. Pasted into a field that
    refused it (an origin, a webhook URL, a network, an agent, a date, a number…), the
    answer showed it again in the field, where it sits in the HTML, the browser's form
    history and any screenshot; names already left it out (core.forms.NoTokenCharField)."""
    from apikeys.services import personal_token_create

    key, secret = make_key(project, name="Pasted")
    pat, _ = personal_token_create(user=user, name="CLI")
    random_part = secret[len("reminix_sk_") :][:20]
    for url, data in signed_in_forms(project, key) + personal_token_forms(pat):
        for field in data:
            for pasted in (secret, f"here: {secret}"):
                sent = {**data, field: [pasted] if isinstance(data[field], list) else pasted}
                for headers in ({}, {"HX-Request": "true"}):
                    answer = signed_in.post(url, sent, headers=headers)
                    assert random_part not in answer.content.decode(), (url, field, headers)
