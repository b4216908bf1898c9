"""Suspending an API key (issue 11, point 2): reversible, and instant like a revocation.

The next call with a suspended key, or with a client token it minted, is refused with 401
suspended_api_key (the key's own answer gives the reason; the browser's does not) on every
worker, Redis copies included; resuming undoes it. The dashboard asks for a reason, shows it
on the list and in usage, and records both in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api.authentication import CLIENT_TOKEN_SUSPENDED
from apikeys.models import ApiKey, ClientToken, TokenStatus
from apikeys.services import api_key_create, api_key_resume, api_key_revoke, api_key_suspend
from audit.log import audit_record
from audit.models import AuditEvent
from core.invalidation import marker_key
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api
from usage.models import Outcome, UsageRecord

INVOKE = "/v1/agents/my-agent/invoke"


def suspend_url(project, key):
    return reverse("apikeys:api_key_suspend", args=[project.slug, key.pk])


def resume_url(project, key):
    return reverse("apikeys:api_key_resume", args=[project.slug, key.pk])


# The API


def test_a_suspended_key_is_refused_with_its_reason_and_works_again_once_resumed(
    api, api_key, user
):
    key = api_key[0]
    assert_ok(api.post(INVOKE, {"prompt": "before"}))

    assert api_key_suspend(api_key=key, by=user, reason="Seen from an unknown network")
    response = api.post(INVOKE, {"prompt": "while"})
    error = assert_error(response, 401, "suspended_api_key")
    assert "Seen from an unknown network" in error["message"]
    assert "resume" in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")

    assert api_key_resume(api_key=key, by=user)
    assert_ok(api.post(INVOKE, {"prompt": "after"}))

    refused = UsageRecord.objects.get(error_code="suspended_api_key")
    assert refused.api_key_id == key.pk and refused.status == 401
    assert refused.outcome == Outcome.AUTH_FAILURE  # on the key's own history


def test_a_client_token_is_refused_while_its_key_is_suspended_without_the_reason(
    api, api_key, user
):
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {"userId": "u_1"}}), 201)
    browser = Api(Client(), minted["token"])
    assert_ok(browser.get("/client/token"))

    api_key_suspend(api_key=api_key[0], by=user, reason="internal: incident 42")
    error = assert_error(browser.get("/client/token"), 401, "suspended_api_key")
    assert error["message"] == CLIENT_TOKEN_SUSPENDED
    assert "incident" not in error["message"]

    api_key_resume(api_key=api_key[0], by=user)
    assert_ok(browser.get("/client/token"))


def test_a_suspended_key_cannot_mint_client_tokens(api, api_key, user):
    api_key_suspend(api_key=api_key[0], by=user, reason="Paused")
    assert_error(api.post("/v1/client-tokens", {"context": {}}), 401, "suspended_api_key")
    assert not ClientToken.objects.exists()


@pytest.mark.parametrize("reason", ["two\nlines", "x" * 201, "nul\x00"])
def test_the_service_refuses_a_reason_the_form_would(api_key, user, reason):
    """Whatever calls it (a page, a future API, a shell): the reason ends up in answers
    and mail, so it is one line and bounded."""
    with pytest.raises(ValidationError):
        api_key_suspend(api_key=api_key[0], by=user, reason=reason)
    api_key[0].refresh_from_db()
    assert api_key[0].suspended_at is None


def test_the_message_ends_its_reason_with_a_full_stop(api_key, user):
    key = api_key[0]
    api_key_suspend(api_key=key, by=user, reason="Seen from an unknown network")
    message = key.suspension_message()
    assert "Reason: Seen from an unknown network. A project member can resume it." in message


def test_revocation_outranks_suspension_and_a_revoked_key_stays_revoked(api, api_key, user):
    key = api_key[0]
    api_key_suspend(api_key=key, by=user, reason="Looking into it")
    api_key_revoke(api_key=key, by=user)
    assert_error(api.post(INVOKE, {"prompt": "hi"}), 401, "expired_api_key")
    assert not api_key_resume(api_key=key, by=user)  # a revoked key is never brought back
    key.refresh_from_db()
    assert key.status is TokenStatus.REVOKED
    assert not api_key_suspend(api_key=key, by=user, reason="again")


def test_suspending_twice_records_once(api_key, user):
    key = api_key[0]
    assert api_key_suspend(api_key=key, by=user, reason="First")
    assert not api_key_suspend(api_key=key, by=user, reason="Second")
    key.refresh_from_db()
    assert key.suspended_reason == "First"
    assert api_key_resume(api_key=key, by=user)
    assert not api_key_resume(api_key=key, by=user)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("api_key.suspended") == 1
    assert actions.count("api_key.resumed") == 1


def test_suspension_is_exact_across_the_workers_copies(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks
):
    """With Redis, a worker answers a known key from its copy; the suspension's change
    marker must reach it on the very next call, and so must the resumption's."""
    marker = marker_key(api_key[0].change_identity)
    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    with django_capture_on_commit_callbacks(execute=True):
        api_key_suspend(api_key=api_key[0], by=user, reason="Now")
    assert_error(api.post(INVOKE, {"prompt": "after"}), 401, "suspended_api_key")
    # The suspension's marker gone (as after its 30 s), the worker copies "suspended"...
    redis_store.round_trip(("DEL", marker))
    assert_error(api.post(INVOKE, {"prompt": "copied"}), 401, "suspended_api_key")
    # ...and only the resumption's own marker makes the next call read the database.
    with django_capture_on_commit_callbacks(execute=True):
        api_key_resume(api_key=api_key[0], by=user)
    assert redis_store.round_trip(("EXISTS", marker)) == [1]
    assert_ok(api.post(INVOKE, {"prompt": "resumed"}))


def test_a_cached_client_token_is_refused_once_its_key_is_suspended(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks
):
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    browser = Api(Client(), minted["token"])
    assert_ok(browser.get("/client/token"))  # copied now
    with django_capture_on_commit_callbacks(execute=True):
        api_key_suspend(api_key=api_key[0], by=user, reason="Now")
    assert_error(browser.get("/client/token"), 401, "suspended_api_key")


# The dashboard


def test_suspend_asks_for_a_reason_beside_its_field_then_suspends(
    signed_in, project, api_key, user
):
    key = api_key[0]
    form = signed_in.get(suspend_url(project, key), headers=HTMX)
    assert form.status_code == 200
    assert f"Suspend “<bdi>{key.name}</bdi>”" in form.content.decode()

    odd = [("", "Say why"), ("two\nlines", "one line"), ("x" * 201, "200"), ("a\x00b", "Null")]
    for reason, message in odd:
        refused = signed_in.post(suspend_url(project, key), {"reason": reason}, headers=HTMX)
        assert refused.status_code == 422
        errors = refused.context["form"].errors["reason"]
        assert any(message in e for e in errors), errors
        assert 'id="id_reason_error"' in refused.content.decode()  # beside its field
    key.refresh_from_db()
    assert key.suspended_at is None

    done = signed_in.post(suspend_url(project, key), {"reason": "Leaked in a log"}, headers=HTMX)
    assert done.status_code == 200
    assert "apiKeysChanged" in done["HX-Trigger"]
    key.refresh_from_db()
    assert key.suspended_by == user and key.suspended_reason == "Leaked in a log"
    event = AuditEvent.objects.get(action="api_key.suspended")
    assert event.project == project and event.metadata == {"reason": "Leaked in a log"}


def test_the_list_marks_a_suspended_key_with_its_reason_and_offers_resume(
    signed_in, project, api_key, user
):
    key = api_key[0]
    api_key_suspend(api_key=key, by=user, reason="Unknown network")
    page = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug]))
    assert key in page.context["active_keys"]  # still the project's working key, paused
    html = page.content.decode()
    assert 'badge-warning">suspended</span>' in html and "Unknown network" in html
    assert resume_url(project, key) in html
    assert suspend_url(project, key) not in html

    usage = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    usage_html = usage.content.decode()
    assert 'badge-warning">suspended</span>' in usage_html
    assert "Unknown network" in usage_html and "suspended_api_key" in usage_html

    resumed = signed_in.post(resume_url(project, key), follow=True)
    assert resumed.status_code == 200
    key.refresh_from_db()
    assert key.suspended_at is None and key.suspended_reason == ""
    assert AuditEvent.objects.filter(action="api_key.resumed", project=project).count() == 1


def test_resume_takes_only_a_post(signed_in, project, api_key, user):
    api_key_suspend(api_key=api_key[0], by=user, reason="Paused")
    assert signed_in.get(resume_url(project, api_key[0])).status_code == 405
    api_key[0].refresh_from_db()
    assert api_key[0].suspended_at is not None


@pytest.mark.parametrize("url", [suspend_url, resume_url])
def test_another_projects_key_cannot_be_suspended_or_resumed(
    signed_in, project, make_project, make_user, make_key, url
):
    theirs = make_project(make_user(email="them@example.com"), name="Theirs")
    their_key, _ = make_key(theirs, name="Theirs")
    suspended = url is resume_url
    if suspended:
        api_key_suspend(api_key=their_key, by=None, reason="Theirs to lift")
    response = signed_in.post(url(project, their_key), {"reason": "mine now"})
    assert response.status_code == 404
    response = signed_in.post(url(theirs, their_key), {"reason": "mine now"})
    assert response.status_code == 404
    their_key.refresh_from_db()
    assert (their_key.suspended_at is not None) is suspended
    assert their_key.suspended_reason == ("Theirs to lift" if suspended else "")


def test_the_client_token_list_marks_tokens_of_a_suspended_key(
    signed_in, project, api, api_key, user
):
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    api_key_suspend(api_key=api_key[0], by=user, reason="Paused")
    page = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug]))
    html = page.content.decode()
    assert minted["id"] in html
    assert "The API key that minted it is suspended." in html


def test_a_token_pasted_into_a_suspension_reason_is_refused_everywhere_and_not_kept(
    signed_in, admin, project, api_key, user
):
    """ "Leaked: reminix_sk_…" is the reason one would write, and a reason is kept in clear
    and shown on the list, in the key's usage, in the audit log and by /v1/api-keys: the
    contract keeps a token out of every later page. The form only asked ("Do not put
    secrets here"); names and notes already refuse one."""
    key, secret = api_key
    reason = f"Leaked: {secret}"
    refused = signed_in.post(suspend_url(project, key), {"reason": reason}, headers=HTMX)
    assert refused.status_code == 422
    assert any("token" in e for e in refused.context["form"].errors["reason"])
    assert 'id="id_reason_error"' in refused.content.decode()  # beside its field
    assert secret not in refused.content.decode()

    response = admin.post(f"/v1/api-keys/key_{key.pk}/suspend", {"reason": reason})
    error = assert_error(response, 400, "invalid_field_value")
    assert "reason" in error["message"] and secret not in response.content.decode()

    with pytest.raises(ValidationError):
        api_key_suspend(api_key=key, by=user, reason=reason)
    key.refresh_from_db()
    assert key.suspended_at is None and key.suspended_reason == ""
    assert not AuditEvent.objects.filter(action="api_key.suspended").exists()


def test_an_expired_key_is_neither_suspended_nor_resumed_on_the_pages_as_over_v1(
    signed_in, project, api_key, user
):
    """/v1 answers 409 for both: a resume would say the key works again, which it never
    will. The pages (the Alerts page offers "Suspend key…" for an expired key; a list
    shown before the expiry offers Resume) said so and recorded it: "calls with it work
    again", and an api_key.resumed event for a key that stops every call."""
    key = api_key[0]
    api_key_suspend(api_key=key, by=user, reason="Looking into it")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    key.refresh_from_db()
    assert not api_key_resume(api_key=key, by=user)
    page = signed_in.post(resume_url(project, key), follow=True).content.decode()
    assert "work again" not in page and "expired on" in page
    key.refresh_from_db()
    assert key.suspended_at is not None

    other, _ = make_expired_key(project, user)
    assert not api_key_suspend(api_key=other, by=user, reason="Seen in a log")
    page = signed_in.post(
        suspend_url(project, other), {"reason": "Seen in a log"}, follow=True
    ).content.decode()
    assert "suspended_api_key" not in page and "expired on" in page
    other.refresh_from_db()
    assert other.suspended_at is None
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert not actions & {"api_key.resumed"}
    assert AuditEvent.objects.filter(action="api_key.suspended").count() == 1  # the first


def make_expired_key(project, user):
    key, secret = api_key_create(
        project=project,
        name="Gone",
        created_by=user,
        expires_at=timezone.now() + timedelta(seconds=1),
    )
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(days=1))
    key.refresh_from_db()
    return key, secret


def test_the_alerts_page_offers_no_suspend_roll_or_revoke_for_an_expired_key(
    signed_in, project, user
):
    """None can change it: the roll form answered 409, the suspend one did nothing, and a
    revocation stops nothing that its expiry has not (the ended keys' table no longer
    offers one either)."""
    from alerts.models import Flag

    key, _ = make_expired_key(project, user)
    now = timezone.now()
    Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.ENDED_TOKEN_USED,
        severity="high",
        dedupe_key="expired:1",
        summary="Expired key tried",
        first_seen=now,
        last_seen=now,
    )
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert "Expired key tried" in html
    assert suspend_url(project, key) not in html
    assert reverse("apikeys:api_key_roll", args=[project.slug, key.pk]) not in html
    assert reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]) not in html
    # It says why, as a revoked key's alert does: without a word the key looked working,
    # its missing buttons unexplained.
    assert '<span class="badge badge-warning">expired</span>' in html


@pytest.mark.django_db(transaction=True)
def test_a_token_kept_in_a_reason_before_reasons_were_checked_is_cut_on_upgrade():
    """Reasons were taken as typed until the form and the API refused a pasted token; one
    kept before that went on into every 401 the key got, the key list and /v1/api-keys.
    The upgrade cuts the secret and leaves its prefix, so the reader still sees what leaked."""
    from datetime import UTC, datetime

    from tests.migration_state import migrated_back, migrated_to_the_end

    old = migrated_back([("apikeys", "0027_api_key_client_tokens_revoked_through")])
    pasted = "reminix_sk_" + "A1b2C3d4E5" * 3 + "Zz9Yy8"
    try:
        project = old.get_model("accounts", "Project").objects.create(name="Old", slug="old")

        def key(n: int, reason: str):
            return (
                old.get_model("apikeys", "ApiKey")
                .objects.create(
                    project=project,
                    name=f"k{n}",
                    token_hash=f"{n:064d}",
                    hint="reminix_sk_abcd…wxyz",
                    suspended_at=datetime.now(UTC),
                    suspended_reason=reason,
                )
                .pk
            )

        leaked = key(1, f"Leaked in #42: {pasted}")
        hinted = key(2, "Same as reminix_sk_abcd…wxyz, looking into it")
    finally:
        migrated_to_the_end()
    assert ApiKey.objects.get(pk=leaked).suspended_reason == (
        "Leaked in #42: reminix_sk_[redacted]"
    )
    assert ApiKey.objects.get(pk=hinted).suspended_reason == (
        "Same as reminix_sk_abcd…wxyz, looking into it"
    )


def test_a_token_kept_in_a_reason_before_reasons_were_checked_is_not_shown_in_the_audit_log(
    signed_in, project, user, make_key
):
    """The upgrade cut it from the key (0028), but the suspension's audit event keeps the
    reason as it was typed, and every member reads the audit log and its export. The event
    stays as written (the trail is append-only); what the pages show of it is cut."""
    key, _ = make_key(project, name="Production")
    pasted = "reminix_sk_" + "A1b2C3d4E5" * 3 + "Zz9Yy8"
    audit_record(
        action="api_key.suspended",
        actor=user,
        project=project,
        target=key,
        target_label=key.name,
        metadata={"reason": f"Leaked in #42: {pasted}; same as reminix_sk_abcd…wxyz"},
    )
    for page in ("accounts:project_audit", "accounts:project_audit_csv"):
        response = signed_in.get(reverse(page, args=[project.slug]))
        assert response.status_code == 200
        shown = b"".join(response.streaming_content) if response.streaming else response.content
        text = shown.decode()
        assert "Leaked in #42: reminix_sk_[redacted]" in text, page
        assert "A1b2C3d4E5" not in text, page
        assert "reminix_sk_abcd…wxyz" in text, page  # a hint is no secret
    assert pasted in str(AuditEvent.objects.get(action="api_key.suspended").metadata)
    assert "A1b2C3d4E5" not in signed_in.get(reverse("accounts:user_audit")).content.decode()


@pytest.mark.parametrize("action", ["suspend", "roll"])
def test_the_suspend_or_roll_panel_of_an_ended_key_says_it_ended_instead_of_asking(
    signed_in, project, user, action
):
    """A key list shown before the key expired (or revoked from another tab) still has
    its Suspend and Roll: the panel asked for a reason or an overlap, and only the answer
    said neither applies. It now says so when it opens, and offers no form."""
    expired, _ = make_expired_key(project, user)
    revoked, _ = api_key_create(project=project, name="Leaked", created_by=user)
    api_key_revoke(api_key=revoked, by=user)
    for key, ended in ((expired, "expired on"), (revoked, "was revoked on")):
        url = reverse(f"apikeys:api_key_{action}", args=[project.slug, key.pk])
        for headers in ({}, {**HTMX, "HX-Target": "key-panel"}):
            response = signed_in.get(url, headers=headers)
            html = response.content.decode()
            assert response.status_code == 200
            assert f"“{key.name}” {ended}" in html
            assert f'action="{url}"' not in html and f'hx-post="{url}"' not in html
