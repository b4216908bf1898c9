"""Each audit event keeps the user agent of the request that made it, as the call log
keeps a call's: cut to 255 characters, control characters escaped, a token in it cut.
Events made outside a request (a scheduled job) have none, as they have no address."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from accounts.models import Project, User
from apikeys.models import ApiKey
from audit.log import audit_record
from audit.models import AuditEvent
from tests.conftest import Api

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
TOKEN = "reminix_sk_" + "A" * 30 + "B" * 6


def test_revoking_a_key_on_its_page_keeps_the_browsers_user_agent(
    signed_in: Client, project: Project, make_key: Any
) -> None:
    key, _ = make_key(project, name="Leaked")
    signed_in.post(
        reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]),
        headers={"user-agent": BROWSER},
    )
    event = AuditEvent.objects.get(target_type="apikey", action="api_key.revoked")
    assert event.user_agent == BROWSER and event.ip_address == "127.0.0.1"


def test_an_event_made_through_the_api_keeps_the_clients_user_agent(
    admin: Api, project: Project, make_key: Any
) -> None:
    key, _ = make_key(project, name="Leaked")
    response = admin.send(
        "DELETE", f"/v1/api-keys/key_{key.pk}", headers={"user-agent": "reminix-cli/2.0"}
    )
    assert response.status_code == 204
    event = AuditEvent.objects.get(target_type="apikey", action="api_key.revoked")
    assert event.user_agent == "reminix-cli/2.0"


def test_a_hostile_user_agent_is_cut_escaped_and_its_token_removed(
    signed_in: Client, project: Project, make_key: Any
) -> None:
    key, _ = make_key(project, name="Leaked")
    hostile = f"curl {TOKEN}\r\nX-Forged: 1\x00\x1b[31m" + "é" * 5000
    signed_in.post(
        reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]),
        headers={"user-agent": hostile},
    )
    kept = AuditEvent.objects.get(target_type="apikey", action="api_key.revoked").user_agent
    assert len(kept) <= 255
    assert TOKEN not in kept and "A" * 20 not in kept
    assert kept.isprintable() and "%0D%0A" in kept
    page = signed_in.get(reverse("accounts:project_audit", args=[project.slug]))
    assert TOKEN not in page.content.decode()


def test_a_percent_escaped_token_in_the_user_agent_is_removed_too(
    signed_in: Client, project: Project, make_key: Any
) -> None:
    """As the usage log cuts it: "reminix%5Fsk%5F…" is a working token to whoever decodes
    it, and the trail is shown to every member and exported."""
    for number, sent in enumerate((TOKEN.replace("_", "%5F"), TOKEN.replace("_", "%255F"))):
        key, _ = make_key(project, name=f"Leaked {number}")
        signed_in.post(
            reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]),
            headers={"user-agent": f"scanner/1 {sent}"},
        )
        kept = AuditEvent.objects.filter(action="api_key.revoked").latest("pk").user_agent
        assert "A" * 12 not in kept and kept.startswith("scanner/1 reminix_sk_"), kept


def test_an_event_outside_a_request_has_no_user_agent(user: User, project: Project) -> None:
    event = audit_record(action="project.renamed", actor=user, project=project)
    assert event.user_agent == ""


def test_the_audit_page_and_export_show_the_user_agent(
    signed_in: Client, project: Project, make_key: Any
) -> None:
    key: ApiKey
    key, _ = make_key(project, name="Leaked")
    signed_in.post(
        reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]),
        headers={"user-agent": BROWSER},
    )
    page = signed_in.get(reverse("accounts:project_audit", args=[project.slug]))
    assert BROWSER in page.content.decode()
    export: Any = signed_in.get(reverse("accounts:project_audit_csv", args=[project.slug]))
    body = b"".join(export.streaming_content).decode()
    assert "user_agent" in body.splitlines()[0] and BROWSER in body
