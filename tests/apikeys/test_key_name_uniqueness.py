"""Two working keys of a project never share a name, whatever its case: the database holds
the rule (the constraint `apikey_unique_working_name`), not only the forms; keys that shared
a name before the constraint are told apart by the upgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import (
    api_key_rename,
    api_key_revoke,
    api_key_suspend,
)
from audit.models import AuditEvent

BEFORE_THE_CONSTRAINT = ("apikeys", "0024_backfill_pat_regenerated_at")


def raw_key(project, name: str, n: int) -> ApiKey:
    """A row written past the services: what only the database can refuse."""
    return ApiKey.objects.create(project=project, name=name, token_hash=f"{n:064d}", hint="h")


def working_named(project, name: str) -> int:
    return ApiKey.objects.for_project(project).active().filter(name__iexact=name).count()


def test_the_database_refuses_a_second_working_key_of_one_name_and_frees_ended_ones(
    project, make_key, make_project, user
):
    """The rule of the forms (apikeys/forms.py, _unique_key_name): a working key's name is
    taken whatever its case, also while the key is suspended; a revoked or expired key's
    name may be used again; another project's keys are no matter."""
    production, _ = make_key(project, name="Production")
    for n, name in enumerate(["Production", "PRODUCTION"]):
        with pytest.raises(IntegrityError), transaction.atomic():
            raw_key(project, name, n)
    api_key_suspend(api_key=production, by=user, reason="Under review")
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_key(project, "production", 2)
    raw_key(make_project(user), "Production", 3)
    api_key_revoke(api_key=production, by=user)
    raw_key(project, "production", 4).revoke(by=user)

    # An expiry is a moment, not a write the database sees: a create or a rename that takes
    # an expired key's name frees it in the same transaction.
    nightly, _ = make_key(project, name="Nightly")
    ApiKey.objects.filter(pk=nightly.pk).update(expires_at=timezone.now() - timedelta(days=1))
    again, _ = make_key(project, name="nightly")
    ApiKey.objects.filter(pk=again.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    staging, _ = make_key(project, name="Staging")
    api_key_rename(api_key=staging, name="NIGHTLY", by=user)
    assert working_named(project, "nightly") == 1
    assert ApiKey.objects.filter(name__iexact="nightly").count() == 3


@pytest.mark.django_db(transaction=True)
def test_keys_that_shared_a_name_before_the_constraint_are_told_apart_by_the_upgrade():
    """apikeys/0025 keeps the oldest working key of each name as it is and numbers the
    later ones (“CI (3)”), within the column and past the names taken; ended keys keep
    theirs. Each rename is in the audit trail."""
    now = datetime.now(UTC)
    MigrationExecutor(connection).migrate([BEFORE_THE_CONSTRAINT])
    graph = MigrationExecutor(connection).loader.graph
    others = [node for node in graph.leaf_nodes() if node[0] != "apikeys"]
    old = MigrationExecutor(connection).loader.project_state([*others, BEFORE_THE_CONSTRAINT]).apps
    try:
        project = old.get_model("accounts", "Project").objects.create(name="Old", slug="old")
        other = old.get_model("accounts", "Project").objects.create(name="Other", slug="other")
        made = iter(range(100))

        def key(name: str, minutes: int, owner=project, **fields):
            return old.get_model("apikeys", "ApiKey").objects.create(
                project=owner,
                name=name,
                token_hash=f"{next(made):064d}",
                hint=f"reminix_sk_{minutes:04d}…",
                created_at=now - timedelta(minutes=100 - minutes),
                **fields,
            )

        numbered = key("CI (2)", 0)
        kept = key("CI", 1)
        other_case = key("ci", 2)
        third = key("CI", 3)
        revoked = key("CI", 4, revoked_at=now)
        expired = key("CI", 5, expires_at=now - timedelta(days=1))
        long_kept = key("x" * 100, 6)
        long_later = key("x" * 100, 7)
        elsewhere = key("CI", 8, owner=other)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )

    def name(row) -> str:
        return ApiKey.objects.get(pk=row.pk).name

    assert [name(k) for k in (numbered, kept, revoked, expired, elsewhere)] == ["CI (2)"] + [
        "CI"
    ] * 4
    assert name(other_case) == "ci (3)"  # “ci (2)” is “CI (2)” whatever its case
    assert name(third) == "CI (4)"
    assert name(long_kept) == "x" * 100 and name(long_later) == "x" * 96 + " (2)"
    renamed = AuditEvent.objects.filter(action="api_key.renamed")
    assert {(e.target_id, e.metadata["from"], e.metadata["to"]) for e in renamed} == {
        (str(other_case.pk), "ci", "ci (3)"),
        (str(third.pk), "CI", "CI (4)"),
        (str(long_later.pk), "x" * 100, "x" * 96 + " (2)"),
    }
    assert all(e.actor is None and e.actor_email for e in renamed)
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_key(ApiKey.objects.get(pk=kept.pk).project, "ci", 99)
