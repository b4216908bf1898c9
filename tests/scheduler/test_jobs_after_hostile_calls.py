"""Every background job after two tenants' worst, sent through the real entry points (the
API with its client, the dashboard's forms), not written into rows by hand: bodies the
contract refuses (NaN, lone surrogates, 5,000-deep nesting, a 5,000-digit number, "²"),
user agents and idempotency keys of 10,000 characters holding a token, line breaks, NUL
and direction controls, a token pasted into a path, forwarded addresses with IPv6 zones,
IPv4 inside IPv6 and no address at all, client-token context at the edge of what is taken,
a key name the dashboard takes at its oddest, and names saved before names were one line.
The usage stream is then ingested and every scheduled job run, twice, with Redis: nothing
raises, nothing is dropped, the tenant next door still gets its alert by mail and
webhook, no token reaches a log, the jobs' output, the usage log or a webhook, and no mail
header or Slack line holds a line break."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from alerts.models import Flag
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import api_key_create, personal_token_create
from core.write_behind import StreamIngest
from scheduler.jobs import jobs

# The webhook tests' receiver, a real HTTP endpoint on 127.0.0.1 (fixtures, by import).
from tests.webhooks.conftest import Receiver, local_delivery, receiver  # noqa: F401
from usage.models import UsageDrop, UsageRecord
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

CONTROLS = "\r\nBcc: everyone@example.com\u202e\u2066\x85\u2028\u00a0"
BODIES = [
    '{"prompt": NaN}',
    '{"prompt": Infinity}',
    '{"prompt": "\\ud800"}',
    '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"prompt": ' + "9" * 5000 + "}",
    '{"prompt": 1e999}',
    '{"input": {"n": ²}}',
    '{"prompt": "\\u0000"}',
    '{"prompt": "' + "ü" * 10_000 + '"}',
    '{"prompt": "hi", "context": {"at": "9999-12-31T23:59:59Z", "then": "0001-01-01"}}',
]
FORWARDED = [
    "fe80::1%eth0",
    "::ffff:198.51.100.7",
    "fe80::1%25eth0",
    "[2001:db8::1]:443",
    "²",
    "2001:db8::ffff:203.0.113.1",
    "198.51.100.07",
    "1" * 10_000,
    "",
]
CONTEXTS = [
    {"deep": json.loads("[" * 60 + "]" * 60)},
    {"big": 2**63 - 1, "float": 1.7976931348623157e308, "tiny": 5e-324},
    {"text": "ü" * 1_500, "odd": CONTROLS, "year": "9999-12-31T23:59:59Z"},
    {"big": 2**64},
    {"text": "ü" * 10_000},
]


@pytest.fixture
def deployment(redis_store, settings):
    """As in production: calls go onto the Redis stream (redis_store's) and reach the
    database through the ingest; one proxy of ours in front."""
    settings.USAGE_FLUSH_SECONDS = 3600
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    return redis_store


def call(client: Client, method: str, path: str, body: str, token: str, **headers: str):
    answer = client.generic(
        method,
        path,
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
        REMOTE_ADDR="127.0.0.1",
    )
    assert answer.status_code < 500, answer.content[:300]
    assert answer["Content-Type"] == "application/json", answer.content[:300]
    return answer


def hostile_calls(client: Client, secret: str) -> list[str]:
    """The worst of the API with a working key; the client tokens it minted."""
    for index, body in enumerate(BODIES):
        for number, forwarded in enumerate(FORWARDED):
            idempotency = [{}, {"Idempotency-Key": f"{secret}{index}"}][number % 2]
            if number == 3:
                idempotency = {"Idempotency-Key": f"{CONTROLS}{index}" + "k" * 10_000}
            call(
                client, "POST", "/v1/agents/my-agent/invoke", body, secret,
                **{"User-Agent": f"ua {secret} {CONTROLS}\x00" + "x" * 10_000,
                   "X-Forwarded-For": forwarded, **idempotency},
            )  # fmt: skip
    for path in (
        f"/v1/agents/{secret}/invoke",
        f"/v1/agents/x%2F{secret}/invoke",
        f"/v1/agents/x%252F{secret}/invoke",
        f"/v1/agents/{'a' * 10_000}/invoke",
        "/v1/agents/%ED%A0%80/invoke",
        "/v1/agents/%00/invoke",
        "/v1/agents/%E2%80%AEmy-agent/invoke",
        "/v1/agents/my-agent%C2%B2/invoke",
    ):
        call(client, "POST", path, '{"prompt": "hi"}', secret)
    minted = [
        call(client, "POST", "/v1/client-tokens", json.dumps({"context": c}), secret)
        for c in CONTEXTS
    ]
    assert [m.status_code for m in minted] == [201, 201, 201, 400, 400]
    client_tokens = [m.json()["token"] for m in minted[:3]]
    for client_token in client_tokens:
        for number in range(12):  # from more addresses than a browser has
            call(
                client, "POST", "/client/agents/my-agent/invoke", '{"prompt": "hi"}',
                client_token, **{"X-Forwarded-For": f"2001:db8:{number}::1%eth{number}"},
            )  # fmt: skip
    return client_tokens


@pytest.mark.django_db(transaction=True)
def test_every_job_after_hostile_calls_runs_to_its_end_and_leaks_nothing(
    deployment, user, project, make_user, signed_in, caplog, request
):
    caplog.set_level(logging.DEBUG)
    hooks: Receiver = request.getfixturevalue("receiver")
    # A key made in the dashboard, named at the oddest the form takes, ending in 7 days.
    made = signed_in.post(
        reverse("apikeys:api_key_create", args=[project.slug]),
        {"name": "²=?utf-8?b?4oCu?=\u00a0\u200d" + "ü" * 80, "access": "full", "expiry": "7",
         "form_id": "form-1"},
    )  # fmt: skip
    assert made.status_code == 201
    shown = re.search(r"reminix_sk_[0-9A-Za-z]{36}", made.content.decode())
    assert shown is not None
    _, secret = api_key_create(project=project, name="Production", created_by=user)
    tried, tried_secret = api_key_create(project=project, name="Tried", created_by=user)
    # Saved before names were one line.
    ApiKey.objects.filter(pk=tried.pk).update(name=(("Tried" + CONTROLS) * 20)[:100])
    Project.objects.filter(pk=project.pk).update(name=("Mine" + CONTROLS)[:80])
    neighbour = make_user(email="neighbour@example.com")
    theirs = Project.objects.for_user(neighbour).get()
    their_key, their_secret = api_key_create(project=theirs, name="Theirs", created_by=neighbour)
    for where, style, owner in ((project, "generic", user), (project, "slack", user),
                                (theirs, "generic", neighbour)):  # fmt: skip
        webhook_create(
            project=where, url=hooks.url(f"/{where.pk}/{style}"), format=style,
            min_severity="low", created_by=owner,
        )  # fmt: skip
    pat, pat_secret = personal_token_create(user=user, name="CLI", permissions=["read"])
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        name=("CLI" + CONTROLS)[:100], expires_at=timezone.now() + timedelta(days=2)
    )
    client = Client()
    for forwarded in [*FORWARDED, "fe80::9%eth0", "::ffff:192.0.2.9"]:
        call(
            client, "GET", "/v1/projects/current", "", pat_secret,
            **{"X-Project": project.slug, "X-Forwarded-For": forwarded,
               "User-Agent": f"{pat_secret}{CONTROLS}"},
        )  # fmt: skip
    secrets = [
        shown[0],
        secret,
        tried_secret,
        their_secret,
        pat_secret,
        *hostile_calls(client, secret),
    ]
    tried.revoke(by=None)
    for forwarded in FORWARDED:
        call(client, "POST", "/v1/agents/my-agent/invoke", "{}", tried_secret,
             **{"X-Forwarded-For": forwarded, "User-Agent": CONTROLS})  # fmt: skip
    their_key.revoke(by=None)
    call(client, "POST", "/v1/agents/my-agent/invoke", "{}", their_secret)
    mail.outbox.clear()

    stdout, stderr = io.StringIO(), io.StringIO()
    stats = StreamIngest(consumer="test").run(once=True)
    for _ in range(2):
        for job in jobs():
            call_command(*job.command, stdout=stdout, stderr=stderr)

    assert stats.dropped == 0 and not UsageDrop.objects.exists()
    assert UsageRecord.objects.count() >= len(BODIES) * len(FORWARDED)
    for where in (project, theirs):
        assert Flag.objects.filter(project=where, kind=Flag.Kind.ENDED_TOKEN_USED).exists()
    assert Flag.objects.filter(project=project, kind=Flag.Kind.CLIENT_TOKEN_MANY_IPS).count() == 3
    assert sorted(m.to[0] for m in mail.outbox) == [
        "ada@example.com",  # the alert of the key still tried,
        "ada@example.com",  # the dashboard's key, ending within a week,
        "ada@example.com",  # and the token, in two days
        "neighbour@example.com",  # the neighbour's alert
    ]
    for message in mail.outbox:
        for name, value in message.message().items():
            assert "\r" not in value and "\n" not in value.replace("\n ", ""), (name, value)
        assert message.bcc == [] and message.message()["Bcc"] is None
        for control in ("\u202e", "\u2066", "\x00"):
            assert control not in message.subject and control not in message.body
    assert not WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.SUCCEEDED)
    assert {r.path for r in hooks.requests} == {
        f"/{project.pk}/generic", f"/{project.pk}/slack", f"/{theirs.pk}/generic"
    }  # fmt: skip
    for received in hooks.requests:
        event = json.loads(received.body)
        if received.path.endswith("slack"):
            for block in event["blocks"]:
                for line in block["text"]["text"].split("\n"):
                    assert "\r" not in line and "\u202e" not in line and "Bcc" not in line[:5]
    # No token anywhere a job writes, nor where the calls' log keeps what clients sent.
    written = stdout.getvalue() + stderr.getvalue()
    for record in caplog.records:
        written += record.getMessage() + str(record.exc_info) + str(record.exc_text)
    bodies = b"".join(r.body for r in hooks.requests).decode()
    for token in secrets:
        assert token not in written and token not in bodies
        for column in ("path", "user_agent", "agent"):
            assert not UsageRecord.objects.filter(**{f"{column}__contains": token}).exists()
        for message in mail.outbox:
            assert token not in message.subject and token not in message.body
    # (In Python: SQLite's LIKE reads a pattern up to its NUL, and would match every row.)
    assert not [a for a in UsageRecord.objects.values_list("user_agent", flat=True) if "\x00" in a]
