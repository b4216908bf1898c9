"""The audit trail records only actions that an app registered, and labels them."""

from __future__ import annotations

import pytest

from audit.actions import UnknownAuditAction, action_groups_for, action_label
from audit.log import audit_record
from audit.models import AuditEvent


def test_an_action_no_app_registered_is_refused_and_nothing_is_written(user, project):
    with pytest.raises(UnknownAuditAction):
        audit_record(action="api_key.teleported", actor=user, project=project)

    assert not AuditEvent.objects.filter(action="api_key.teleported").exists()


def test_every_app_registers_its_own_actions_with_their_labels():
    assert action_label("user.signed_in") == "Signed in"  # accounts
    assert action_label("api_key.revoked") == "API key revoked"  # apikeys
    assert action_label("flag.acknowledged") == "Alert acknowledged"  # alerts


def test_an_action_an_older_release_wrote_still_reads_as_words():
    assert action_label("api_key.rotated_twice") == "Api key rotated twice"


def test_groups_keep_project_pages_free_of_a_persons_own_events():
    project_groups = {group.key for group in action_groups_for("project")}
    user_groups = {group.key for group in action_groups_for("user")}

    assert "personal_tokens" not in project_groups and "account" not in project_groups
    assert {"personal_tokens", "account", "api_keys"} <= user_groups


def test_nul_characters_in_what_an_event_keeps_are_taken_out_not_a_failed_write(user, project):
    """PostgreSQL refuses NUL in text and in jsonb: a name, a reason or an address holding
    one (a client's text that reached the service) failed the write, and with it the
    change it records or the request (a 500). SQLite kept it. Taken out on both, as the
    rest of the code takes it out of what it keeps."""
    event = audit_record(
        action="project.renamed",
        actor=None,
        actor_email="ghost\x00@example.com",
        project=project,
        target_label="Ada\x00's project",
        metadata={
            "from": "old\x00",
            "to\x00": "new",
            "names": ["a\x00", {"b\x00": "c\x00"}],
            "kept": 3,
            "none": None,
        },
    )
    event.refresh_from_db()
    assert event.actor_email == "ghost@example.com"
    assert event.target_label == "Ada's project"
    assert event.metadata == {
        "from": "old",
        "to": "new",
        "names": ["a", {"b": "c"}],
        "kept": 3,
        "none": None,
    }
