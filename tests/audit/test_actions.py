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
