"""GitHub's secret-scanning partner alerts (issue 11, point 7): the body's ECDSA signature is
checked against the configured keys (these tests sign with their own pair), each token is
answered true_positive or false_positive by its SHA-256, a working one is revoked or only
reported by the project's policy, and a project's token raises a high alert."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import mail
from django.test import Client

from accounts.services import project_set_key_policy
from alerts.models import Flag, FlagQuerySet
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import api_key_revoke, api_key_roll, personal_token_create
from apikeys.tokens import TokenKind, token_generate
from tests.api.assertions import assert_error, assert_ok

URL = "/v1/credentials/github-secret-scanning"
KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
PRIVATE = ec.generate_private_key(ec.SECP256R1())
PEM = (
    PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture(autouse=True)
def github_keys(settings):
    settings.SECRET_SCANNING_PUBLIC_KEYS = {KEY_ID: PEM}


def alert(tokens, *, key=PRIVATE, key_id=KEY_ID, body=None, signature=None):
    raw = (
        body
        if body is not None
        else json.dumps(
            [
                {
                    "token": t,
                    "type": "reminix_api_key",
                    "url": "https://github.com/octo/app/blob/abc/.env",
                    "source": "content",
                }
                for t in tokens
            ]
        ).encode()
    )
    signed = signature or base64.b64encode(key.sign(raw, ec.ECDSA(hashes.SHA256()))).decode()
    return Client().post(
        URL,
        raw,
        content_type="application/json",
        headers={"Github-Public-Key-Identifier": key_id, "Github-Public-Key-Signature": signed},
    )


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_found_key_is_revoked_labelled_and_alerted(
    api, api_key, user, django_capture_on_commit_callbacks
):
    key, token = api_key
    made_up = token_generate(TokenKind.API_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        feedback = assert_ok(alert([token, made_up, "not a token"]))
    assert feedback == [
        {"token_hash": sha(token), "token_type": "reminix_api_key", "label": "true_positive"},
        {"token_hash": sha(made_up), "token_type": "reminix_api_key", "label": "false_positive"},
        {
            "token_hash": sha("not a token"),
            "token_type": "reminix_api_key",
            "label": "false_positive",
        },
    ]
    assert token not in json.dumps(feedback)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert_error(api.post("/v1/agents/my-agent/invoke", {"prompt": "x"}), 401, "expired_api_key")
    flag = Flag.objects.get(kind=Flag.Kind.FOUND_IN_PUBLIC)
    assert flag.severity == Flag.Severity.HIGH and flag.api_key == key
    assert flag.evidence["url"].startswith("https://github.com/octo/app")
    assert flag.evidence["revoked"] is True
    assert len(mail.outbox) == 1  # the owners, from the reported-leak mail


def test_a_project_that_only_reports_keeps_the_key_working_and_is_alerted(
    api, api_key, user, project
):
    project_set_key_policy(
        project=project, max_key_days=None, max_pat_days=None, leaked_key_action="report", by=user
    )
    key, token = api_key
    assert assert_ok(alert([token]))[0]["label"] == "true_positive"
    key.refresh_from_db()
    assert key.revoked_at is None
    assert_ok(api.post("/v1/agents/my-agent/invoke", {"prompt": "still works"}))
    flag = Flag.objects.get(kind=Flag.Kind.FOUND_IN_PUBLIC)
    assert flag.evidence["revoked"] is False and "not revoked" in flag.summary
    # Found again while the alert is open: the same alert counts it.
    alert([token])
    assert Flag.objects.get(kind=Flag.Kind.FOUND_IN_PUBLIC).occurrences == 2


def test_a_found_pat_is_revoked_and_an_old_secret_of_a_rolled_key_stops_alone(api_key, user):
    _, pat_token = personal_token_create(user=user, name="CLI")
    key, old = api_key
    new = api_key_roll(api_key=key, by=user, overlap=timedelta(days=1))
    labels = [f["label"] for f in assert_ok(alert([pat_token, old]))]
    assert labels == ["true_positive", "true_positive"]
    assert PersonalAccessToken.objects.get(name="CLI").revoked_at is not None
    key.refresh_from_db()
    assert key.revoked_at is None and not key.previous_secret_works_at(
        key.rolled_at + timedelta(days=2)
    )
    assert new  # the new secret was not reported


@pytest.mark.parametrize(
    "tamper",
    [
        {"signature": base64.b64encode(b"not a signature").decode()},
        {"signature": "%%%not base64%%%"},
        {"key_id": "someone-elses-key"},
        {"key": ec.generate_private_key(ec.SECP256R1())},
    ],
)
def test_a_body_not_signed_by_githubs_key_is_refused_and_nothing_happens(api_key, tamper):
    key, token = api_key
    assert_error(alert([token], **tamper), 403, "insufficient_permissions")
    key.refresh_from_db()
    assert key.revoked_at is None and not Flag.objects.exists()


def test_missing_headers_and_odd_bodies_are_refused_in_the_envelope(api_key):
    response = Client().post(URL, b"[]", content_type="application/json")
    assert_error(response, 400, "missing_required_field")
    for body in (
        b"{}",
        b"[]",
        b"not json",
        b"[" * 5000,
        b'[{"token": 5}]',
        b'[{"token": "\\u0000"}]',
        b'[{"token": "a", "url": ["x"]}]',
        json.dumps([{"token": "a"}] * 101).encode(),
    ):
        assert alert([], body=body).status_code == 400
    assert Client().get(URL).status_code == 405


def test_without_configured_keys_the_endpoint_is_off(settings, api_key):
    settings.SECRET_SCANNING_PUBLIC_KEYS = {}
    assert_error(alert([api_key[1]]), 404, "not_found")
    assert ApiKey.objects.get(pk=api_key[0].pk).revoked_at is None


def test_a_content_length_that_is_no_number_is_a_400_not_a_500(api_key):
    response = Client().post(URL, b"[]", content_type="application/json", CONTENT_LENGTH="12abc")
    assert response.status_code == 400


def test_a_key_that_had_already_ended_is_alerted_as_such_not_as_left_working(api_key, user):
    """Found in review: a key revoked before GitHub found it (an old commit, a rescan), or a
    rolled key's old secret past its overlap, raised a high alert saying "It was not revoked
    (the project only reports)" in a project whose policy is to revoke: a false account of
    a credential, emailed to its owners."""
    key, token = api_key
    api_key_revoke(api_key=key, by=user)
    assert assert_ok(alert([token]))[0]["label"] == "true_positive"
    flag = Flag.objects.get(kind=Flag.Kind.FOUND_IN_PUBLIC)
    assert flag.evidence["revoked"] is False
    assert "had already stopped working" in flag.summary and "only reports" not in flag.summary


def test_an_old_secret_past_its_overlap_is_alerted_as_stopped(api_key, user):
    key, old = api_key
    api_key_roll(api_key=key, by=user, overlap=timedelta(0))
    alert([old])
    summary = Flag.objects.get(kind=Flag.Kind.FOUND_IN_PUBLIC).summary
    assert "had already stopped working" in summary and "only reports" not in summary
    key.refresh_from_db()
    assert key.revoked_at is None  # its new secret was not found


def test_the_same_token_alerted_twice_at_once_is_one_alert_and_no_500(
    api_key, make_key, project, monkeypatch
):
    """Found in review: two posts of GitHub's for the same token at once (found in two
    places) both saw no open alert and both created one; the second broke the
    one-open-alert constraint and the whole post was a 500, the tokens after it in the
    batch left working and unanswered."""
    key, token = api_key
    other_key, other_token = make_key(project, "Staging")
    alert([token])  # the other post, committed just after this one looked
    real_open = FlagQuerySet.open
    looked = []

    def none_open_yet(self):
        looked.append(True)
        return self.none() if len(looked) == 1 else real_open(self)

    monkeypatch.setattr(FlagQuerySet, "open", none_open_yet)
    labels = [f["label"] for f in assert_ok(alert([token, other_token]))]
    assert labels == ["true_positive", "true_positive"]
    assert Flag.objects.get(api_key=key).occurrences == 2
    other_key.refresh_from_db()
    assert other_key.revoked_at is not None and Flag.objects.filter(api_key=other_key).exists()
