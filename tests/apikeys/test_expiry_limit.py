"""One limit for every expiry a key or PAT is given: at most ten years from now
(apikeys.services.LONGEST_LIFETIME), whether it comes from the dashboard's forms, from
/v1/api-keys, from createapikey or from a service called directly. The key form took any
date to year 9999 while the API took ten years."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import (
    LONGEST_LIFETIME,
    OutOfPolicy,
    api_key_create,
    personal_token_create,
    personal_token_regenerate,
)
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api


def _last_day() -> datetime.date:
    return (timezone.now() + LONGEST_LIFETIME).date()


def _create_key(client: Client, project, expires_on: str):
    data = {
        "name": "Far",
        "access": "full",
        "expiry": "date",
        "expires_on": expires_on,
        "form_id": f"f-{expires_on[:40]!r}",
    }
    return client.post(reverse("apikeys:api_key_create", args=[project.slug]), data, headers=HTMX)


def test_the_key_form_refuses_year_9999_beside_the_date(signed_in, project):
    response = _create_key(signed_in, project, "9999-12-31")
    assert response.status_code == 422
    [message] = response.context["form"].errors["expires_on"]
    assert "at most ten years from now" in message
    assert 'id="id_expires_on_error"' in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_key_form_takes_the_last_day_within_ten_years_and_not_the_day_after(signed_in, project):
    last = _last_day()
    refused = _create_key(signed_in, project, f"{last + datetime.timedelta(days=1):%Y-%m-%d}")
    assert refused.status_code == 422 and "expires_on" in refused.context["form"].errors
    assert _create_key(signed_in, project, f"{last:%Y-%m-%d}").status_code == 201
    key = ApiKey.objects.get()
    assert key.expires_at == datetime.datetime.combine(last, datetime.time.min, datetime.UTC)


def test_the_date_picker_offers_only_the_days_the_limit_allows(signed_in, project):
    page = signed_in.get(reverse("apikeys:api_key_create", args=[project.slug]), headers=HTMX)
    html = page.content.decode()
    assert f'max="{_last_day():%Y-%m-%d}"' in html
    tomorrow = timezone.now().date() + datetime.timedelta(days=1)
    assert f'min="{tomorrow:%Y-%m-%d}"' in html


@pytest.mark.parametrize(
    "typed",
    [
        "10000-01-01",
        "0001-01-01",
        "2001-01-01",
        "today",
        "²⁰²⁷-01-01",
        "2027-0²-01",
        "2027\x00-01-01",
        "\x00",
        "9" * 5000,
        "99999999999999999999-01-01",
        "2027-02-30",
        "2027-01-01\u202e",
    ],
)
def test_odd_dates_are_refused_beside_the_field_never_a_500(signed_in, project, typed):
    if typed == "today":
        typed = f"{timezone.now().date():%Y-%m-%d}"
    response = _create_key(signed_in, project, typed)
    assert response.status_code == 422
    assert "expires_on" in response.context["form"].errors
    assert not ApiKey.objects.exists()


def test_the_pat_forms_refuse_year_9999_beside_the_date(signed_in, project, user):
    created = signed_in.post(
        reverse("apikeys:personal_token_create"),
        {
            "name": "Far",
            "access": "full",
            "reach": "all",
            "expiry": "date",
            "expires_on": "9999-12-31",
            "form_id": "f",
        },
        headers=HTMX,
    )
    assert created.status_code == 422 and "expires_on" in created.context["form"].errors
    pat, _ = personal_token_create(user=user, name="CLI")
    regenerated = signed_in.post(
        reverse("apikeys:personal_token_regenerate", args=[pat.pk]),
        {"expiry": "date", "expires_on": "9999-12-31", "form_id": "g"},
        headers=HTMX,
    )
    assert regenerated.status_code == 422
    assert "expires_on" in regenerated.context["form"].errors
    assert PersonalAccessToken.objects.get().hint == pat.hint


def test_the_services_refuse_an_expiry_past_ten_years_whoever_calls_them(project, user):
    """What no caller can skip: a script, a shell, a page not written yet."""
    too_far = timezone.now() + LONGEST_LIFETIME + datetime.timedelta(minutes=5)
    with pytest.raises(OutOfPolicy, match="ten years"):
        api_key_create(project=project, name="Far", created_by=user, expires_at=too_far)
    with pytest.raises(OutOfPolicy, match="ten years"):
        personal_token_create(user=user, name="Far", expires_at=too_far)
    pat, _ = personal_token_create(user=user, name="Near")
    with pytest.raises(OutOfPolicy, match="ten years"):
        personal_token_regenerate(personal_token=pat, by=user, expires_at=too_far)
    assert not ApiKey.objects.exists()
    assert PersonalAccessToken.objects.get().expires_at is None


def test_the_api_and_the_services_agree_on_the_limit(user, project):
    _, secret = personal_token_create(
        user=user, name="Rotation", permissions=["agents", "read", "write", "keys"]
    )
    admin = Api(Client(), secret)
    admin.client.defaults["HTTP_X_PROJECT"] = project.slug
    last = timezone.now() + LONGEST_LIFETIME - datetime.timedelta(minutes=1)
    assert_ok(admin.post("/v1/api-keys", {"name": "Last", "expiresAt": last.isoformat()}), 201)
    for late in ("9999-12-31T00:00:00Z", (last + datetime.timedelta(minutes=2)).isoformat()):
        error = assert_error(
            admin.post("/v1/api-keys", {"name": "Late", "expiresAt": late}),
            400,
            "invalid_field_value",
        )
        assert "expiresAt" in error["message"] and "ten years" in error["message"]


@pytest.mark.parametrize("days", [str(LONGEST_LIFETIME.days + 1), "0", "-1", "9" * 30])
def test_createapikey_refuses_days_past_the_limit_with_a_message(project, days):
    with pytest.raises(CommandError, match="expires-in-days"):
        call_command(
            "createapikey",
            "--project",
            project.slug,
            "--name",
            "CI",
            "--expires-in-days",
            days,
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert not ApiKey.objects.exists()


def test_a_policy_tightened_after_the_forms_check_is_said_beside_the_expiry_not_a_500(
    signed_in, project, monkeypatch
):
    """An owner sets a 30-day policy between the form's check and the service's: the
    service refuses (OutOfPolicy), and the page says so where the form would have."""
    from apikeys.forms import ApiKeyCreateForm, PersonalTokenCreateForm

    type(project).objects.filter(pk=project.pk).update(
        max_key_lifetime_days=30, max_pat_lifetime_days=30
    )
    for form in (ApiKeyCreateForm, PersonalTokenCreateForm):
        monkeypatch.setattr(form, "lifetime_policy", lambda self: (None, ""))
    day = timezone.now().date() + datetime.timedelta(days=60)
    key = _create_key(signed_in, project, f"{day:%Y-%m-%d}")
    assert key.status_code == 422
    assert "within 30 days" in key.context["form"].errors["expires_on"][0]
    pat = signed_in.post(
        reverse("apikeys:personal_token_create"),
        {
            "name": "CLI",
            "access": "full",
            "reach": "chosen",
            "projects": [str(project.pk)],
            "expiry": "90",
            "form_id": "p",
        },
        headers=HTMX,
    )
    assert pat.status_code == 422
    assert "within 30 days" in pat.context["form"].errors["expiry"][0]
    assert not ApiKey.objects.exists() and not PersonalAccessToken.objects.exists()
