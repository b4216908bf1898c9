"""Revoking all client tokens of a key ends every client token the key had minted, on the
API from the very next call, and none it mints after. It writes once, to the key: whoever
holds a leaked key can mint about 1.7 million tokens a day, and a write per token would have
run past the statement timeout and rolled back, every time (ClientToken.end_reason_at reads
the key's mark with the token; api/lookup.py)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import apikeys.services.client_tokens
from apikeys.models import ApiKey, ClientToken, TokenStatus
from apikeys.services import client_token_create, client_tokens_revoke_for_key
from apikeys.views.client_tokens import effective_status
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import (
    Api,
    finished,
    paused_in_another_thread,
    statements_run,
)

WHO_AM_I = "/client/token"
ALL_REVOKED = "Revoked with all its key's client tokens"
CONCURRENT = "SQLite serialises all writers: concurrency is shown on PostgreSQL."


def mint(api: Api) -> Api:
    """A client token minted by `api` over the API, as the browser holding it calls."""
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    return Api(Client(), minted["token"])


def many(api_key: ApiKey, count: int, *, start: int = 0) -> None:
    """`count` live client tokens of `api_key`, written past the services (only their
    number matters)."""
    ClientToken.objects.bulk_create(
        ClientToken(
            project=api_key.project,
            api_key=api_key,
            # 64 characters, as a keyed hash is, whatever the key's id has grown to.
            token_hash=hashlib.sha256(f"{api_key.pk}:{n}".encode()).hexdigest(),
            hint=f"ct{n}",
            expires_at=api_key.created_at.replace(year=2100),
            minted_with_hint=api_key.hint,
        )
        for n in range(start, start + count)
    )


def listed(client, project) -> dict[str, tuple[TokenStatus, str]]:
    """What the Client tokens page shows of each token: its status and why."""
    response = client.get(reverse("apikeys:client_token_list", args=[project.slug]))
    return {token.public_id: (status, why) for token, status, why in response.context["rows"]}


def test_every_earlier_token_is_refused_and_later_ones_work(
    signed_in, project, api, api_key, make_key
):
    key, _ = api_key
    earlier = [mint(api) for _ in range(2)]
    other_key = Api(Client(), make_key(project, name="Other")[1])
    others = mint(other_key)
    signed_in.post(reverse("apikeys:client_tokens_revoke_all", args=[project.slug, key.pk]))
    later = mint(api)

    for browser in earlier:
        error = assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
        assert error["message"].startswith("This client token was revoked on")
    assert_ok(later.get(WHO_AM_I))
    assert_ok(others.get(WHO_AM_I))
    shown = listed(signed_in, project)
    tokens = ClientToken.objects.order_by("id")
    ended = [t.public_id for t in tokens if t.api_key_id == key.pk][:2]
    for public_id in ended:
        status, why = shown[public_id]
        assert status is TokenStatus.REVOKED and why.startswith(ALL_REVOKED)
    working = [t.public_id for t in tokens if t.public_id not in ended]
    assert [shown[public_id][0] for public_id in working] == [TokenStatus.ACTIVE] * 2
    event = AuditEvent.objects.get(action="client_token.revoked_all_of_key")
    assert event.target_id == str(key.pk)


def test_the_page_says_what_happened(signed_in, project, api, api_key):
    key, _ = api_key
    mint(api)
    url = reverse("apikeys:client_tokens_revoke_all", args=[project.slug, key.pk])
    answer = signed_in.post(url, follow=True).content.decode()
    assert f"Every client token “{key.name}” had minted until now is revoked" in answer


def test_revoking_all_writes_nothing_per_token_and_runs_the_same_statements_for_any_number(
    api_key, user
):
    key, _ = api_key
    many(key, 3)
    with statements_run() as few:
        client_tokens_revoke_for_key(api_key=key, by=user)
    many(key, 300, start=3)
    with statements_run() as lots:
        client_tokens_revoke_for_key(api_key=key, by=user)

    def shape(statements: list[str]) -> list[str]:
        return [sql for sql in statements if "SAVEPOINT" not in sql]

    table = ClientToken._meta.db_table
    assert shape(few) and shape(few) == shape(lots)
    assert not [sql for sql in few + lots if sql.startswith("UPDATE") and table in sql]
    tokens = ClientToken.objects.filter(api_key=key).select_related("api_key")
    assert not tokens.filter(revoked_at__isnull=False).exists()  # not one row written
    assert {effective_status(t)[0] for t in tokens} == {TokenStatus.REVOKED}


def test_a_key_that_minted_nothing_records_nothing(project, api_key, user):
    assert client_tokens_revoke_for_key(api_key=api_key[0], by=user) is False
    assert not AuditEvent.objects.filter(action="client_token.revoked_all_of_key").exists()


@pytest.mark.django_db(transaction=True)
def test_a_mint_under_way_holds_off_no_revoke_all_and_every_earlier_token_ends(
    api, api_key, user, monkeypatch, short_lock_timeout
):
    """A mint has written its token and not committed: the revoke-all does not wait for it
    (mints that held the key's row let a leaked key's holder, minting without pause, keep
    the owner's revoke-all waiting), and every token committed before it ends. The one
    under way commits after, its answer comes after: a token minted just after, it works."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    before = mint(api)
    minted = {}

    def mint_one() -> None:
        minted["browser"] = mint(api)

    # Paused in the mint's audit metadata, after its token's row is written.
    thread, go, _, failures = paused_in_another_thread(
        monkeypatch, apikeys.services.client_tokens, "_scope", mint_one
    )
    try:
        # A wait for the mint would end in an error, soon (short_lock_timeout).
        assert client_tokens_revoke_for_key(api_key=api_key[0], by=user)
    finally:
        go.set()
        finished(thread)
    assert failures == []
    assert_error(before.get(WHO_AM_I), 401, "expired_api_key")
    assert_ok(minted["browser"].get(WHO_AM_I))


@pytest.mark.django_db(transaction=True)
def test_a_mint_during_a_revoke_all_does_not_wait_and_its_token_works(
    api, api_key, user, monkeypatch, short_lock_timeout
):
    """The revoke-all has marked the key, not yet committed: a mint does not wait for it,
    and its token, drawn after the mark, works. One from before does not."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    before = mint(api)
    thread, go, _, failures = paused_in_another_thread(
        monkeypatch,
        apikeys.services.client_tokens,
        "_key_changed",  # the revoke-all's, after it marked the key
        lambda: client_tokens_revoke_for_key(api_key=api_key[0], by=user),
    )
    try:
        after = mint(api)
    finally:
        go.set()
        finished(thread)
    assert failures == []
    assert_ok(after.get(WHO_AM_I))
    assert_error(before.get(WHO_AM_I), 401, "expired_api_key")


def test_the_api_reads_the_mark_in_its_one_statement_for_the_token(api, api_key, user):
    browser = mint(api)
    client_tokens_revoke_for_key(api_key=api_key[0], by=user)
    # CaptureQueriesContext: the lookup is prepared on PostgreSQL, past Django's cursor
    # (core/prepared.py logs it where this reads, not where statements_run does).
    with CaptureQueriesContext(connection) as captured:
        assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    table = ClientToken._meta.db_table
    statements = [q["sql"] for q in captured.captured_queries]
    lookups = [sql for sql in statements if sql.startswith("SELECT") and table in sql]
    assert len(lookups) == 1, lookups
    assert "client_tokens_revoked_through" in lookups[0]


def _revoked_all_an_hour_ago(key: ApiKey, *, token_expired: timedelta) -> Api:
    """A token of `key`, all of whose tokens were revoked an hour ago, and which expires
    (expired) `token_expired` ago."""
    ClientToken.objects.filter(api_key=key).delete()
    minted, secret = client_token_create(project=key.project, api_key=key, context={})
    now = timezone.now()
    ApiKey.objects.filter(pk=key.pk).update(
        client_tokens_revoked_through=minted.pk, client_tokens_revoked_at=now - timedelta(hours=1)
    )
    ClientToken.objects.filter(pk=minted.pk).update(expires_at=now - token_expired)
    return Api(Client(), secret)


def test_a_token_revoked_with_all_reads_revoked_after_its_expiry_too(signed_in, project, api_key):
    """As when revoke-all wrote to each token: the page and the browser keep saying it
    was revoked, and when, once its hour is up."""
    key, _ = api_key
    browser = _revoked_all_an_hour_ago(key, token_expired=timedelta(minutes=30))
    error = assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    assert error["message"].startswith("This client token was revoked on")
    [(status, why)] = listed(signed_in, project).values()
    assert status is TokenStatus.REVOKED and why.startswith(ALL_REVOKED)


def test_a_token_that_had_expired_before_all_were_revoked_reads_expired(
    signed_in, project, api_key
):
    key, _ = api_key
    browser = _revoked_all_an_hour_ago(key, token_expired=timedelta(hours=2))
    error = assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    assert error["message"].startswith("This client token expired on")
    [(status, _)] = listed(signed_in, project).values()
    assert status is TokenStatus.EXPIRED


def test_revoking_one_already_revoked_with_all_says_so_and_records_nothing(
    signed_in, project, api, api_key
):
    key, _ = api_key
    browser = mint(api)
    signed_in.post(reverse("apikeys:client_tokens_revoke_all", args=[project.slug, key.pk]))
    token = ClientToken.objects.get(api_key=key)
    url = reverse("apikeys:client_token_revoke", args=[project.slug, token.public_id])
    answer = signed_in.post(url, follow=True).content.decode()
    assert f"Client token {token.public_id} had already ended." in answer
    assert not AuditEvent.objects.filter(action="client_token.revoked").exists()
    token.refresh_from_db()
    assert token.revoked_at is None  # the revoke-all's time stays the one it is told
    assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")


def test_a_token_revoked_with_all_and_then_reported_as_leaked_is_not_revoked_again(
    project, api, api_key, user
):
    from apikeys.reported import Reporter, tokens_revoke_reported

    key, _ = api_key
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)["token"]
    client_tokens_revoke_for_key(api_key=key, by=user)
    reporter = Reporter(ip="203.0.113.9", user_agent="finder")
    assert tokens_revoke_reported(secrets=[minted], reporter=reporter) == 0
    assert not AuditEvent.objects.filter(action="client_token.revoked").exists()


@pytest.mark.parametrize("expired", [timedelta(seconds=-5), timedelta(seconds=2), timedelta(0)])
@pytest.mark.parametrize("clock", [timedelta(seconds=-10), timedelta(seconds=-1), timedelta(0)])
def test_a_token_minted_before_a_revoke_all_is_refused_whatever_the_clocks(api_key, expired, clock):
    """Ids, not clocks, decide: a token with an id up to the mark is refused by an instance
    whose clock runs behind the one that revoked them all, and whatever its expiry (the
    minting instance's clock) reads against the revoke-all's time."""
    key, _ = api_key
    token, _ = client_token_create(project=key.project, api_key=key, context={})
    revoked_at = timezone.now()
    ApiKey.objects.filter(pk=key.pk).update(
        client_tokens_revoked_through=token.pk, client_tokens_revoked_at=revoked_at
    )
    ClientToken.objects.filter(pk=token.pk).update(expires_at=revoked_at - expired)
    token = ClientToken.objects.select_related("api_key").get(pk=token.pk)
    moment = revoked_at + clock - timedelta(seconds=3)  # before the expiry, by this clock
    assert token.end_reason_at(moment) is not None
    assert token.own_end_reason_at(moment) is not None
    assert token.revoke(by=None) is False
