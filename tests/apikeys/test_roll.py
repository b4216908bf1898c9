"""Rolling an API key (issue 11, point 1): a new secret shown once, the old one working for
a chosen overlap and then refused naming the new one, on one key with one usage history.

The overlap's end is reached in these tests by moving previous_expires_at into the past,
as the clock would."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api import authentication
from apikeys.models import ApiKey, ClientToken
from apikeys.services import (
    CannotRoll,
    api_key_end_previous_secret,
    api_key_revoke,
    api_key_roll,
    api_key_suspend,
    client_token_create,
)
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api, statements_run, the_second_waits_for_the_first
from usage.models import UsageRecord

INVOKE = "/v1/agents/my-agent/invoke"


def roll_url(project, key):
    return reverse("apikeys:api_key_roll", args=[project.slug, key.pk])


def end_url(project, key):
    return reverse("apikeys:api_key_end_previous", args=[project.slug, key.pk])


def overlap_over(key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk).update(
        previous_expires_at=timezone.now() - timedelta(seconds=1)
    )


# The API


def test_both_secrets_work_during_the_overlap_then_the_old_one_names_the_new(api, api_key, user):
    key, old_secret = api_key
    old_hint = key.hint
    new_secret = api_key_roll(api_key=key, by=user, overlap=timedelta(hours=24))
    key.refresh_from_db()
    assert new_secret != old_secret and key.hint != old_hint and key.previous_hint == old_hint

    new = Api(Client(), new_secret)
    assert_ok(api.post(INVOKE, {"prompt": "old, in the overlap"}))
    assert_ok(new.post(INVOKE, {"prompt": "new"}))
    expires = api.post(INVOKE, {"prompt": "old again"})["X-Reminix-Token-Expires"]
    assert expires.startswith(f"{key.previous_expires_at:%Y-%m-%dT%H:%M}")
    assert "X-Reminix-Token-Expires" not in new.post(INVOKE, {"prompt": "new again"})

    overlap_over(key)
    error = assert_error(api.post(INVOKE, {"prompt": "old, after"}), 401, "expired_api_key")
    assert "rolled" in error["message"]
    assert old_hint in error["message"] and key.hint in error["message"]
    assert_ok(new.post(INVOKE, {"prompt": "new, after"}))

    # One key, one history: every call of both secrets is on it, the refusal included.
    records = UsageRecord.objects.filter(api_key=key)
    assert records.count() == 6
    assert records.filter(error_code="expired_api_key").count() == 1


def test_the_old_secret_is_refused_from_the_very_moment_its_overlap_ends(
    api, api_key, user, hold_clock
):
    key = api_key[0]
    api_key_roll(api_key=key, by=user, overlap=timedelta(hours=1))
    key.refresh_from_db()
    assert key.previous_expires_at is not None
    held = hold_clock(authentication)
    ApiKey.objects.filter(pk=key.pk).update(previous_expires_at=held)
    error = assert_error(api.post(INVOKE, {"prompt": "old, at the end"}), 401, "expired_api_key")
    assert "rolled" in error["message"]


def test_rolling_with_no_overlap_stops_the_old_secret_at_once(api, api_key, user):
    new_secret = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(0))
    assert_error(api.post(INVOKE, {"prompt": "old"}), 401, "expired_api_key")
    assert_ok(Api(Client(), new_secret).post(INVOKE, {"prompt": "new"}))


def test_client_tokens_minted_with_the_old_secret_end_with_it(api, api_key, user):
    before = assert_ok(api.post("/v1/client-tokens", {"context": {}, "ttlSeconds": 86400}), 201)
    new_secret = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(hours=1))
    key = ApiKey.objects.get(pk=api_key[0].pk)
    during = assert_ok(api.post("/v1/client-tokens", {"context": {}, "ttlSeconds": 86400}), 201)
    fresh = assert_ok(
        Api(Client(), new_secret).post("/v1/client-tokens", {"context": {}, "ttlSeconds": 86400}),
        201,
    )
    by_id = {t.public_id: t for t in ClientToken.objects.select_related("api_key")}
    # Minted with the old secret: at most until it stops, whatever ttl was asked. One
    # minted before the roll keeps its row as it was (nothing is written per token); the
    # list shows it ending with the secret, and the API refuses it then.
    assert by_id[before["id"]].expires_at > key.previous_expires_at
    assert by_id[before["id"]].ends_at == key.previous_expires_at
    told = assert_ok(Api(Client(), before["token"]).get("/client/token"))  # as its browser is
    assert told["expiresAt"] == key.previous_expires_at.isoformat()
    assert by_id[during["id"]].expires_at == key.previous_expires_at
    assert by_id[during["id"]].minted_with_hint == key.previous_hint
    assert by_id[fresh["id"]].minted_with_hint == key.hint
    assert by_id[fresh["id"]].expires_at > key.previous_expires_at

    assert api_key_end_previous_secret(api_key=key, by=user)
    for minted in (before, during):
        browser = Api(Client(), minted["token"])
        assert_error(browser.get("/client/token"), 401, "expired_api_key")
    assert_ok(Api(Client(), fresh["token"]).get("/client/token"))
    assert_error(api.post(INVOKE, {"prompt": "old"}), 401, "expired_api_key")


def test_a_roll_writes_nothing_per_client_token_and_one_from_before_hints_still_ends(
    api, api_key, user
):
    """Before, a roll and the end of its overlap cut the expiry of every client token the
    old secret minted, in one statement: whoever held a leaked key could mint so many (the
    rate limit allows some 1.7 million a day) that rolling it ran past the statement
    timeout, every time. The API checks the minting secret on every call instead."""
    key = api_key[0]
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    legacy, legacy_secret = client_token_create(project=key.project, api_key=key, context={})
    ClientToken.objects.filter(pk=legacy.pk).update(minted_with_hint="")  # from before hints
    with statements_run() as rolling:
        api_key_roll(api_key=key, by=user, overlap=timedelta(hours=1))
    for browser in (Api(Client(), minted["token"]), Api(Client(), legacy_secret)):
        assert_ok(browser.get("/client/token"))  # in the overlap
    with statements_run() as ending:
        assert api_key_end_previous_secret(api_key=ApiKey.objects.get(pk=key.pk), by=user)
    for browser in (Api(Client(), minted["token"]), Api(Client(), legacy_secret)):
        assert_error(browser.get("/client/token"), 401, "expired_api_key")
    table = ClientToken._meta.db_table
    assert rolling and ending  # the statements were seen: none of them is on client tokens
    assert not [sql for sql in [*rolling, *ending] if table in sql]


def test_rolling_again_ends_the_secret_still_in_its_overlap(api, api_key, user):
    second = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(days=7))
    third = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(days=7))
    assert_error(api.post(INVOKE, {"prompt": "first"}), 401, "invalid_api_key")
    assert_ok(Api(Client(), second).post(INVOKE, {"prompt": "second, in its overlap"}))
    assert_ok(Api(Client(), third).post(INVOKE, {"prompt": "third"}))
    rolled = AuditEvent.objects.filter(action="api_key.rolled").order_by("id")
    assert rolled.count() == 2
    assert "ended_now" in rolled.last().metadata


def test_a_revoked_key_is_not_rolled_and_revoking_ends_both_secrets(api, api_key, user):
    new_secret = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(hours=1))
    api_key_revoke(api_key=api_key[0], by=user)
    assert_error(api.post(INVOKE, {"prompt": "old"}), 401, "expired_api_key")
    assert_error(Api(Client(), new_secret).post(INVOKE, {"prompt": "new"}), 401, "expired_api_key")
    with pytest.raises(CannotRoll):
        api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(0))


def test_an_expired_key_cannot_be_rolled(api_key, user):
    key = api_key[0]
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    key.refresh_from_db()
    with pytest.raises(CannotRoll, match="expired"):
        api_key_roll(api_key=key, by=user, overlap=timedelta(hours=1))
    key.refresh_from_db()
    assert key.rolled_at is None and key.previous_token_hash is None
    assert not AuditEvent.objects.filter(action="api_key.rolled").exists()


def test_a_suspended_key_stays_suspended_for_both_secrets(api, api_key, user):
    api_key_suspend(api_key=api_key[0], by=user, reason="Looking into it")
    new_secret = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(hours=1))
    assert_error(api.post(INVOKE, {"prompt": "old"}), 401, "suspended_api_key")
    assert_error(
        Api(Client(), new_secret).post(INVOKE, {"prompt": "new"}), 401, "suspended_api_key"
    )


@pytest.mark.parametrize("overlap", [timedelta(seconds=-1), timedelta(days=8)])
def test_an_overlap_outside_none_to_seven_days_is_refused(api_key, user, overlap):
    with pytest.raises(ValueError):
        api_key_roll(api_key=api_key[0], by=user, overlap=overlap)
    assert ApiKey.objects.get(pk=api_key[0].pk).rolled_at is None


# The dashboard


def test_roll_asks_for_an_overlap_shows_the_new_secret_once_and_audits(
    signed_in, project, api_key, user
):
    key = api_key[0]
    form = signed_in.get(roll_url(project, key), headers=HTMX)
    html = form.content.decode()
    assert form.status_code == 200 and f"Roll “<bdi>{key.name}</bdi>”" in html
    assert form.context["form"]["overlap"].value() == "24h"  # the default
    form_id = form.context["form_id"]

    for bad in ["", "forever", "²", "1h\x00"]:
        refused = signed_in.post(roll_url(project, key), {"overlap": bad, "form_id": form_id})
        assert refused.status_code == 422
        assert 'id="id_overlap_error"' in refused.content.decode()  # beside its field
    assert ApiKey.objects.get(pk=key.pk).rolled_at is None

    done = signed_in.post(
        roll_url(project, key), {"overlap": "1h", "form_id": form_id}, headers=HTMX
    )
    assert done.status_code == 201
    assert "no-store" in done["Cache-Control"] and "apiKeysChanged" in done["HX-Trigger"]
    secret = done.context["token"]
    assert secret.startswith("reminix_sk_") and secret in done.content.decode()
    assert "roll the key again" in done.content.decode()
    key.refresh_from_db()
    assert key.previous_expires_at - key.rolled_at == timedelta(hours=1)
    assert key.rolled_by == user

    again = signed_in.post(roll_url(project, key), {"overlap": "1h", "form_id": form_id})
    assert again.status_code == 302  # the same form does not roll twice
    assert ApiKey.objects.get(pk=key.pk).hint == key.hint

    event = AuditEvent.objects.get(action="api_key.rolled")
    assert event.project == project and event.metadata["overlap_seconds"] == 3600
    assert event.metadata["new"] == key.hint and secret not in str(event.metadata)


def test_the_list_shows_the_old_secret_with_its_countdown_and_stops_it_on_request(
    signed_in, project, api_key, user
):
    key = api_key[0]
    old_hint = key.hint
    api_key_roll(api_key=key, by=user, overlap=timedelta(hours=24))
    page = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug]))
    html = page.content.decode().replace("\xa0", " ")  # timeuntil's non-breaking spaces
    assert old_hint in html and "data-countdown" in html
    assert "in 23 hours" in html or "in 1 day" in html
    assert end_url(project, key) in html

    assert signed_in.get(end_url(project, key)).status_code == 405
    stopped = signed_in.post(end_url(project, key), headers=HTMX)
    assert stopped.status_code == 200 and "apiKeysChanged" in stopped["HX-Trigger"]
    key.refresh_from_db()
    assert not key.previous_secret_works_at(timezone.now())
    assert AuditEvent.objects.filter(action="api_key.previous_secret_ended").count() == 1
    html = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug])).content.decode()
    assert end_url(project, key) not in html
    # Stopping it again does nothing more.
    assert not api_key_end_previous_secret(api_key=key, by=user)


def test_a_revoked_key_cannot_be_rolled_from_the_page(signed_in, project, api_key, user):
    key = api_key[0]
    form = signed_in.get(roll_url(project, key))  # opened while it worked, sent after
    api_key_revoke(api_key=key, by=user)
    refused = signed_in.post(
        roll_url(project, key), {"overlap": "now", "form_id": form.context["form_id"]}
    )
    assert refused.status_code == 409
    assert "revoked" in refused.content.decode() and "Create a new key" in refused.content.decode()


@pytest.mark.parametrize("url", [roll_url, end_url])
def test_another_projects_key_cannot_be_rolled_or_stopped(
    signed_in, project, make_project, make_user, make_key, url
):
    theirs = make_project(make_user(email="them@example.com"), name="Theirs")
    their_key, _ = make_key(theirs, name="Theirs")
    hint = their_key.hint
    for slug_project in (project, theirs):
        response = signed_in.post(url(slug_project, their_key), {"overlap": "now", "form_id": "x"})
        assert response.status_code == 404
    assert ApiKey.objects.get(pk=their_key.pk).hint == hint


def test_a_client_token_dies_with_its_minting_secret_whatever_its_expiry_says(api, api_key, user):
    """Found in review: a mint racing a roll could store a later expiry. The API checks the
    minting secret on every call, so the stored expiry does not matter."""
    api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(days=7))
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)  # old secret
    later = timezone.now() + timedelta(days=1)
    ClientToken.objects.filter(public_id=minted["id"]).update(expires_at=later)
    browser = Api(Client(), minted["token"])
    assert_ok(browser.get("/client/token"))
    api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(days=7))  # the old one ends
    ClientToken.objects.filter(public_id=minted["id"]).update(expires_at=later)
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_roll_form_sent_again_past_its_first_send_rolls_nothing(
    signed_in, project, api_key, user
):
    """The session remembers a form only once its first answer is saved: a second send
    that started before then (a double click, another tab) must not roll the key again,
    which would end at once the secret the first send left working for its overlap."""
    key, original = api_key
    form = signed_in.get(roll_url(project, key), headers=HTMX)
    fields = {"overlap": "24h", "replacing": form.context["form"]["replacing"].value()}
    assert fields["replacing"] == key.hint
    first = signed_in.post(roll_url(project, key), {**fields, "form_id": "first"}, headers=HTMX)
    assert first.status_code == 201
    second = signed_in.post(roll_url(project, key), {**fields, "form_id": "second"}, headers=HTMX)
    assert second.status_code == 409
    html = second.content.decode()
    assert re.search(r"reminix_sk_[0-9A-Za-z]{36}", html) is None  # no secret, old or new
    assert "was just given a new secret" in html
    assert AuditEvent.objects.filter(action="api_key.rolled").count() == 1
    key.refresh_from_db()
    assert key.previous_secret_works_at(timezone.now())  # the original, for its 24 hours
    assert_ok(Api(Client(), original).post(INVOKE, {"prompt": "hi"}))


@pytest.mark.django_db(transaction=True)
def test_one_roll_form_sent_twice_at_once_rolls_once(project, api_key, user, monkeypatch):
    """The second send waits for the first (core.shown_once: one browser's secret forms
    take turns on its session's row), then finds the form used and rolls nothing."""
    from apikeys.views import api_keys as views

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    key, original = api_key
    first = Client()
    first.force_login(user)
    second = Client()
    second.cookies = first.cookies  # one browser, one session: a double click
    fields = {"overlap": "24h", "replacing": key.hint, "form_id": "once"}
    statuses: dict[str, int] = {}  # by sender: which answers first after the lock is a race

    def send(client: Client, who: str) -> None:
        statuses[who] = client.post(roll_url(project, key), fields, headers=HTMX).status_code

    failures = the_second_waits_for_the_first(
        monkeypatch,
        views,
        "api_key_roll",
        lambda: send(first, "first"),
        lambda: send(second, "second"),
    )
    assert failures == []
    assert statuses == {"first": 201, "second": 409}
    assert AuditEvent.objects.filter(action="api_key.rolled").count() == 1
    key.refresh_from_db()
    assert key.previous_secret_works_at(timezone.now())
    assert_ok(Api(Client(), original).post(INVOKE, {"prompt": "hi"}))


def test_a_browser_is_told_its_token_ends_with_the_rolled_secret_that_minted_it(api, api_key, user):
    """Found in review: a roll no longer cuts the expiry of the client tokens the old
    secret minted (nothing is written per token), and GET /client/token still answered
    that row's expiry: a browser told it had a day left was refused at the overlap's end."""
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}, "ttlSeconds": 86400}), 201)
    api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(hours=1))
    ends = ApiKey.objects.get(pk=api_key[0].pk).previous_expires_at
    told = assert_ok(Api(Client(), minted["token"]).get("/client/token"))
    assert datetime.fromisoformat(told["expiresAt"]) == ends


def test_the_roll_and_revoke_dialogs_say_how_they_differ_for_a_leaked_key(
    signed_in, project, api_key
):
    """Someone told a key leaked chooses between them: a roll's overlap keeps the leaked
    secret working for whoever has it, and a revocation leaves no key to move to."""
    key = api_key[0]
    roll = signed_in.get(roll_url(project, key), headers=HTMX).content.decode()
    assert "If this secret leaked" in roll and "Not at all" in roll
    revoke = reverse("apikeys:api_key_revoke", args=[project.slug, key.pk])
    confirm = signed_in.get(revoke, headers=HTMX).content.decode()
    assert "roll it instead" in confirm
