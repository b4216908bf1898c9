"""An owner handing a leaver's keys over while a member renames one of them to the name an
expired key of the leaver still holds: both write the same two keys. Each takes them in
id order before writing any, so neither holds one the other waits behind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

import apikeys.services.api_keys
from accounts.models import Membership
from accounts.services import membership_add
from apikeys.models import ApiKey
from apikeys.services import api_key_create, api_key_rename, api_keys_transfer_from_leavers
from tests.conftest import the_second_waits_for_the_first

CONCURRENT = "SQLite serialises all writers: the lock is shown on PostgreSQL."


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("expired_first", [True, False], ids=["expired-older", "expired-newer"])
def test_handing_over_while_a_key_is_renamed_to_an_expired_keys_name_never_deadlocks(
    user, project, make_user, monkeypatch, expired_first
):
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    leaver, member = make_user(email="lee@example.com"), make_user(email="mo@example.com")
    membership_add(project=project, user=leaver, role="member", by=user)
    membership_add(project=project, user=member, role="member", by=user)

    def made(name: str) -> ApiKey:
        return api_key_create(project=project, name=name, created_by=leaver)[0]

    if expired_first:
        expired, renamed = made("old"), made("worker")
    else:
        renamed, expired = made("worker"), made("old")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    Membership.objects.filter(project=project, user=leaver).delete()  # left, keys stay

    # The hand-over pauses after writing its first key (its first audit event); the rename
    # frees the expired key's name, then writes the renamed key.
    renaming_failures = the_second_waits_for_the_first(
        monkeypatch,
        apikeys.services.api_keys,
        "audit_record",
        lambda: api_keys_transfer_from_leavers(project=project, to=member, by=user),
        lambda: api_key_rename(api_key=ApiKey.objects.get(pk=renamed.pk), name="old", by=member),
    )
    assert renaming_failures == []
    assert set(ApiKey.objects.filter(project=project).values_list("created_by", flat=True)) == {
        member.pk
    }
    assert ApiKey.objects.get(pk=renamed.pk).name == "old"
