"""The upgrade that made JSON columns refuse a type our services never write (accounts
0024, agents 0009, alerts 0017, apikeys 0033, audit 0006, webhooks 0007) repairs the rows
of another type already stored before it adds the constraints, failing closed: no key,
PAT or client token gains access by it, and an audit event's metadata is kept.

A database is migrated back to before it, rows are written as a hand edit would have left
them (the constraints are gone again: going back drops them), and migrated forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Passkey, User
from agents.models import Agent, Execution
from alerts.models import AlertRules
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from audit.models import AuditEvent
from tests.migration_state import migrated_back, migrated_to_the_end
from webhooks.models import WebhookDelivery

BEFORE = [
    ("accounts", "0023_names_without_disguised_tokens"),
    ("agents", "0008_descriptions_without_disguised_tokens"),
    ("alerts", "0016_key_on_client_api"),
    ("apikeys", "0032_names_without_disguised_tokens"),
    ("audit", "0005_user_agent"),
    ("webhooks", "0006_delivery_attempts_32_bit"),
]
UPGRADE = "the upgrade that made tokens' JSON columns keep their type (apikeys 0033)"


@pytest.mark.django_db(transaction=True)
def test_rows_of_another_json_type_are_repaired_and_no_token_gains_access(capsys):
    now = datetime.now(UTC)
    earlier = now - timedelta(days=3)
    old = migrated_back(BEFORE)
    try:
        user = old.get_model("accounts", "User").objects.create(email="old@example.com")
        project = old.get_model("accounts", "Project").objects.create(name="Old", slug="old")
        made = iter(range(100))

        def key(**fields):
            return old.get_model("apikeys", "ApiKey").objects.create(
                project=project,
                name=f"Key {len(fields)}-{next(made)}",
                token_hash=f"k{next(made):063d}",
                hint="reminix_sk_abcd…wxyz",
                permissions=fields.pop("permissions", ["agents", "read", "write"]),
                **fields,
            )

        def pat(**fields):
            return old.get_model("apikeys", "PersonalAccessToken").objects.create(
                user=user,
                name="CLI",
                token_hash=f"p{next(made):063d}",
                hint="reminix_pat_abcd…wxyz",
                permissions=fields.pop("permissions", ["read"]),
                **fields,
            )

        unwritten = key(permissions="read,write")
        anywhere = key(allowed_networks="10.0.0.0/8")
        every_agent = key(agent_names={"support": True})
        both_ways = key(agent_actions=5)
        revoked_before = key(agent_names=7, revoked_at=earlier)
        usual = key(allowed_networks=["10.0.0.0/8"], agent_names=["support"])
        pat_unwritten = pat(permissions=7)
        pat_anywhere = pat(allowed_networks={})
        client = old.get_model("apikeys", "ClientToken").objects.create(
            project=project,
            api_key=usual,
            token_hash=f"c{next(made):063d}",
            hint="reminix_ct_abcd…wxyz",
            public_id="ct_odd",
            context={},
            server_context=["user", 42],
            expires_at=now + timedelta(hours=1),
        )
        passkey = old.get_model("accounts", "Passkey").objects.create(
            user=user,
            credential_id="cred",
            public_key=b"k",
            user_handle=b"h",
            name="Phone",
            transports="usb",
        )
        rules = old.get_model("alerts", "AlertRules").objects.create(project=project, off=5)
        AuditEvent_ = old.get_model("audit", "AuditEvent")
        listed = AuditEvent_.objects.create(action="api_key.created", metadata=[1, "two"])
        number = AuditEvent_.objects.create(action="api_key.created", metadata=5)
        fine = AuditEvent_.objects.create(action="api_key.created", metadata={"a": 1})
        agent = old.get_model("agents", "Agent").objects.create(
            project=project, name="support", config="be brief"
        )
        execution = old.get_model("agents", "Execution").objects.create(
            project=project,
            agent_name="support",
            type="invoke",
            status="success",
            input=[1],
            output="hello",
        )
        endpoint = old.get_model("webhooks", "WebhookEndpoint").objects.create(
            project=project, url_encrypted="x", secret_encrypted="x", secret_hint="whsec_…"
        )
        Delivery = old.get_model("webhooks", "WebhookDelivery")
        waiting = Delivery.objects.create(
            endpoint=endpoint,
            event_id="evt_1",
            event_type="webhook.test",
            payload=5,
            status="pending",
            next_attempt_at=now,
        )
        delivered = Delivery.objects.create(
            endpoint=endpoint,
            event_id="evt_2",
            event_type="webhook.test",
            payload="sent",
            status="succeeded",
            delivered_at=earlier,
        )
    finally:
        migrated_to_the_end()

    keys = {k.pk: k for k in ApiKey.objects.all()}
    # Permissions of another type: none at all, and the key otherwise as it was.
    assert keys[unwritten.pk].permissions == [] and keys[unwritten.pk].revoked_at is None
    assert PersonalAccessToken.objects.get(pk=pat_unwritten.pk).permissions == []
    # Empty networks or agent scope would allow everything: revoked, and in the audit trail.
    for widened in (anywhere, every_agent, both_ways):
        repaired = keys[widened.pk]
        assert repaired.revoked_at is not None and repaired.status == "revoked"
        assert [repaired.allowed_networks, repaired.agent_names, repaired.agent_actions] == [
            [] if widened is anywhere else repaired.allowed_networks,
            [] if widened is every_agent else repaired.agent_names,
            [] if widened is both_ways else repaired.agent_actions,
        ]
    assert keys[revoked_before.pk].revoked_at == earlier
    assert keys[revoked_before.pk].agent_names == []
    assert keys[usual.pk].revoked_at is None
    assert keys[usual.pk].allowed_networks == ["10.0.0.0/8"]
    assert keys[usual.pk].agent_names == ["support"]
    assert PersonalAccessToken.objects.get(pk=pat_anywhere.pk).revoked_at is not None
    assert PersonalAccessToken.objects.get(pk=pat_anywhere.pk).allowed_networks == []
    repaired_client = ClientToken.objects.get(pk=client.pk)
    assert repaired_client.revoked_at is not None and repaired_client.server_context == {}
    revoked = AuditEvent.objects.filter(actor_email=UPGRADE)
    assert sorted((e.action, e.target_id) for e in revoked) == sorted(
        [
            ("api_key.revoked", str(anywhere.pk)),
            ("api_key.revoked", str(every_agent.pk)),
            ("api_key.revoked", str(both_ways.pk)),
            ("personal_token.revoked", str(pat_anywhere.pk)),
            ("client_token.revoked", str(client.pk)),
        ]
    )
    event = revoked.get(action="api_key.revoked", target_id=str(anywhere.pk))
    assert event.metadata["why"].startswith("allowed_networks") and event.actor is None
    assert event.project_id == project.pk
    on_their_page = AuditEvent.objects.for_user(User.objects.get(pk=user.pk))
    assert on_their_page.get(action="personal_token.revoked").actor_email == UPGRADE

    assert Passkey.objects.get(pk=passkey.pk).transports == []
    assert AlertRules.objects.get(pk=rules.pk).off == []
    # The audit trail, an agent's config and an execution's input keep what they held.
    assert AuditEvent.objects.get(pk=listed.pk).metadata == {"stored": [1, "two"]}
    assert AuditEvent.objects.get(pk=number.pk).metadata == {"stored": 5}
    assert AuditEvent.objects.get(pk=fine.pk).metadata == {"a": 1}
    assert Agent.objects.get(pk=agent.pk).config == {"stored": "be brief"}
    assert Execution.objects.get(pk=execution.pk).input == {"stored": [1]}
    assert Execution.objects.get(pk=execution.pk).output == "hello"
    # A delivery not sent yet is not sent as {"stored": …}.
    stopped = WebhookDelivery.objects.get(pk=waiting.pk)
    assert stopped.payload == {"stored": 5} and stopped.status == "gave_up"
    assert "not a JSON object" in stopped.last_error
    sent = WebhookDelivery.objects.get(pk=delivered.pk)
    assert sent.payload == {"stored": "sent"} and sent.status == "succeeded"

    printed = capsys.readouterr().out
    assert "apikeys_apikey.permissions: 1 row(s)" in printed
    assert "apikeys_apikey: 3 token(s) revoked" in printed
    assert "accounts_auditevent.metadata: 2 row(s)" in printed
    assert "accounts_passkey" in printed and "apikeys_apikey.allowed_networks: 1 row(s)" in printed
    assert "apikeys_apikey.agent_names: 2 row(s)" in printed
