"""X-Reminix-Token-Expires (issue 11, point 5): in its last 7 days, every answer to a key
or PAT says when it expires, so a script with nobody reading the dashboard hears of it."""

from __future__ import annotations

import datetime

from django.test import Client
from django.utils import timezone

from apikeys.services import personal_token_create
from tests.api.assertions import assert_ok
from tests.conftest import Api

INVOKE = "/v1/agents/my-agent/invoke"
HEADER = "X-Reminix-Token-Expires"


def in_days(days: float) -> datetime.datetime:
    return (timezone.now() + datetime.timedelta(days=days)).replace(microsecond=0)


def test_a_key_in_its_last_week_says_when_it_expires_on_every_answer(api, make_key, project):
    expires = in_days(3)
    _, token = make_key(project, name="Soon", expires_at=expires)
    ok = api.post(INVOKE, {"prompt": "hi"}, token=token)
    assert_ok(ok)
    assert ok[HEADER] == expires.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    missing = api.get("/v1/agents/nobody", token=token)
    assert missing.status_code == 404 and missing[HEADER] == ok[HEADER]


def test_keys_further_from_expiry_or_without_one_say_nothing(api, make_key, project):
    _, later = make_key(project, name="Later", expires_at=in_days(8))
    for token in (later, api.token):
        response = api.post(INVOKE, {"prompt": "hi"}, token=token)
        assert_ok(response)
        assert HEADER not in response


def test_an_expired_key_is_refused_without_the_header(api, make_key, project):
    _, token = make_key(project, name="Gone", expires_at=in_days(-1))
    response = api.post(INVOKE, {"prompt": "hi"}, token=token)
    assert response.status_code == 401 and HEADER not in response


def test_a_pat_in_its_last_week_says_so_too(user, project):
    _, token = personal_token_create(user=user, name="CLI", expires_at=in_days(1))
    response = Api(Client(), token).get("/v1/agents", headers={"X-Project": project.slug})
    assert_ok(response)
    assert HEADER in response


def test_client_tokens_say_nothing_even_when_their_key_expires_soon(api, make_key, project):
    _, token = make_key(project, name="Soon", expires_at=in_days(2))
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}, token=token), 201)
    response = Api(Client(), minted["token"]).get("/client/token")
    assert_ok(response)
    assert HEADER not in response
