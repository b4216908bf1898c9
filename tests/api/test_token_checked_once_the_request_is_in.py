"""A token is checked once the whole request has arrived, not when its headers have.

A client can send its headers and hold its body back (a slow upload, for as long as the
server waits: gunicorn's 30 s, or without end under `make run`). Checked on the headers
alone, a token revoked meanwhile would still act once the body came in: the holder of a
leaked `keys` PAT, keeping a few requests open, could make themselves a new API key, or
roll one, after the owner's revocation had returned. Each test here revokes while the
body is still on its way (the body's first read does it) and expects the call refused
and nothing done."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.test import Client
from django.test.client import FakePayload

from accounts.models import Membership
from agents.models import Agent
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke, api_key_suspend, personal_token_revoke
from apikeys.tokens import TokenKind, token_generate
from tests.api.assertions import assert_error
from usage.models import UsageRecord


class Clock:
    """The frame's clock (api.endpoint._clock), moved on by a body that keeps it waiting."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    import api.endpoint

    clock = Clock()
    monkeypatch.setattr(api.endpoint, "_clock", clock)
    BodyStillArriving.clock = clock
    return clock


class BodyStillArriving(FakePayload):
    """A body whose first read waits for `meanwhile` to happen, a few seconds: what the
    server sees of a client that sends its headers, then its body later."""

    clock: Clock

    def __init__(self, body: bytes, meanwhile: Callable[[], object]) -> None:
        super().__init__(body)
        self.meanwhile: Callable[[], object] | None = meanwhile

    def read(self, size: int = -1, /) -> bytes:
        if self.meanwhile is not None:
            happen, self.meanwhile = self.meanwhile, None
            self.clock.now += 5
            happen()
        return super().read(size)


def send_slowly(
    method: str,
    path: str,
    body: object,
    *,
    token: str,
    meanwhile: Callable[[], object],
    headers: dict[str, str] | None = None,
):
    data = json.dumps(body).encode()
    return Client().generic(
        method,
        path,
        data,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        **{"wsgi.input": BodyStillArriving(data, meanwhile)},
    )


def test_a_pat_revoked_while_its_body_arrives_makes_no_api_key(admin, project, user):
    pat = user.personal_tokens.get()
    answer = send_slowly(
        "POST",
        "/v1/api-keys",
        {"name": "made after the revocation"},
        token=admin.token,
        headers={"X-Project": project.slug},
        meanwhile=lambda: personal_token_revoke(personal_token=pat, by=user),
    )
    assert_error(answer, 401, "expired_api_key")
    assert not ApiKey.objects.filter(name="made after the revocation").exists()


def test_a_key_revoked_while_its_body_arrives_deploys_nothing(api_key, project, user):
    answer = send_slowly(
        "PUT",
        "/v1/agents/my-agent",
        {"kind": "echo", "description": "deployed after the revocation"},
        token=api_key[1],
        meanwhile=lambda: api_key_revoke(api_key=api_key[0], by=user),
    )
    assert_error(answer, 401, "expired_api_key")
    assert Agent.objects.get(project=project, name="my-agent").description != (
        "deployed after the revocation"
    )


def test_a_key_suspended_while_its_body_arrives_mints_no_client_token(api_key, user):
    answer = send_slowly(
        "POST",
        "/v1/client-tokens",
        {"context": {}},
        token=api_key[1],
        meanwhile=lambda: api_key_suspend(api_key=api_key[0], by=user, reason="Leaked"),
    )
    assert_error(answer, 401, "suspended_api_key")
    assert not api_key[0].client_tokens.exists()


def test_a_body_too_big_is_still_answered_after_the_token(api, api_key, settings):
    """Waiting for a real token's body changes no answer: a made-up token is still 401
    (its body never read), a body over Django's limit still 413 (counted on the key)."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    big = {"prompt": "x" * 200}
    assert_error(
        api.post("/v1/agents/my-agent/invoke", big, token="reminix_sk_" + "a" * 36),
        401,
        "invalid_api_key",
    )
    assert_error(api.post("/v1/agents/my-agent/invoke", big), 413, "invalid_request")


def test_a_member_removed_while_their_body_arrives_is_refused(admin, project, make_user, user):
    """The same for the person (member_hold already refused this inside the service)."""
    owner = make_user(email="owner@example.com")
    Membership.objects.filter(project=project, user=user).update(role="member")
    Membership.objects.create(project=project, user=owner, role="owner")
    membership = Membership.objects.get(project=project, user=user)
    from accounts.services import membership_remove

    answer = send_slowly(
        "POST",
        "/v1/api-keys",
        {"name": "made after the removal"},
        token=admin.token,
        headers={"X-Project": project.slug},
        meanwhile=lambda: membership_remove(membership=membership, by=owner),
    )
    assert_error(answer, 403, "insufficient_permissions")
    assert not ApiKey.objects.filter(name="made after the removal").exists()


class BodyCutOff(FakePayload):
    """A request body whose client goes away mid-read: reading it raises OSError."""

    def read(self, size: int = -1, /) -> bytes:
        raise OSError("the client went away")


def test_a_body_cut_off_midway_is_a_400_not_a_logged_500(api_key, caplog):
    data = json.dumps({"prompt": "hi"}).encode()
    answer = Client().generic(
        "POST",
        "/v1/agents/my-agent/invoke",
        data,
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key[1]}"},
        **{"wsgi.input": BodyCutOff(data)},
    )
    assert_error(answer, 400, "invalid_request")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


class BodyNeverSent(FakePayload):
    """A client that declares a body and never sends it: reading it would hold the worker
    until the server's timeout (gunicorn's 30 s, then the worker is killed)."""

    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("the body of a request nobody may make was waited for")


def send_nothing(path: str, headers: dict[str, str]):
    data = b'{"prompt": "hi"}'
    return Client().generic(
        "POST",
        path,
        data,
        content_type="application/json",
        headers=headers,
        **{"wsgi.input": BodyNeverSent(data)},
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer reminix_sk_typo"},
        # Shape and checksum right (anyone can compute a CRC32), but no such key.
        {"Authorization": f"Bearer {token_generate(TokenKind.API_KEY)}"},
    ],
    ids=["no-token", "not-bearer", "malformed", "unknown"],
)
def test_a_request_without_a_real_token_is_refused_without_waiting_for_its_body(db, headers):
    """Only a token the server knows waits for its body: anyone else, holding a body back,
    could otherwise keep every worker busy until it is killed, and so stop the API and
    the dashboard for everyone, without a token at all."""
    answer = send_nothing("/v1/agents/my-agent/invoke", headers)
    assert answer.status_code == 401


def test_a_revoked_key_is_refused_without_waiting_for_its_body_and_counted(api_key, user):
    api_key_revoke(api_key=api_key[0], by=user)
    answer = send_nothing("/v1/agents/my-agent/invoke", {"Authorization": f"Bearer {api_key[1]}"})
    assert_error(answer, 401, "expired_api_key")
    record = UsageRecord.objects.get(request_id=answer["X-Request-Id"])
    assert (record.status, record.api_key_id) == (401, api_key[0].pk)


def test_a_known_token_whose_body_is_waited_for_is_counted_once(api_key, settings, window_clock):
    settings.API_RATE_LIMIT_PER_MINUTE = 5
    answer = send_slowly(
        "POST",
        "/v1/agents/my-agent/invoke",
        {"prompt": "hi"},
        token=api_key[1],
        meanwhile=lambda: None,
    )
    assert answer.status_code == 200
    assert answer["X-RateLimit-Remaining"] == "4"
