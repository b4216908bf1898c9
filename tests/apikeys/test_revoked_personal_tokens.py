"""A revoked personal access token is a record: its name and networks are not edited any
more (its row offers no such button, and the pages answer 404 as for a token that is not
yours), also when the revocation commits while the edit is on its way. An expired one
can still be regenerated, so it can still be renamed and limited."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apikeys.models import PersonalAccessToken
from apikeys.services import (
    Revoked,
    personal_token_create,
    personal_token_rename,
    personal_token_revoke,
    token_networks_set,
)
from audit.models import AuditEvent
from tests.conftest import HTMX, another_connection, commit_once_it_waits

EDITS = {
    "rename": ("apikeys:personal_token_rename", {"name": "Renamed"}),
    "networks": ("apikeys:personal_token_networks", {"networks": "198.51.100.0/24"}),
}


def _unchanged(pat: PersonalAccessToken) -> bool:
    now = PersonalAccessToken.objects.get(pk=pat.pk)
    return now.name == "CLI" and now.allowed_networks == []


@pytest.mark.parametrize("edit", EDITS)
def test_a_revoked_tokens_edit_pages_are_404_and_change_nothing(signed_in, user, edit):
    pat, _ = personal_token_create(user=user, name="CLI")
    personal_token_revoke(personal_token=pat, by=user)
    name, data = EDITS[edit]
    url = reverse(name, args=[pat.pk])
    assert signed_in.get(url, headers=HTMX).status_code == 404
    assert signed_in.post(url, data, headers=HTMX).status_code == 404
    assert _unchanged(pat)
    assert not AuditEvent.objects.filter(
        action__in=["personal_token.renamed", "personal_token.networks_changed"]
    ).exists()


def test_the_services_refuse_a_revoked_token_whatever_the_caller_read(user):
    pat, _ = personal_token_create(user=user, name="CLI")
    stale = PersonalAccessToken.objects.get(pk=pat.pk)
    personal_token_revoke(personal_token=pat, by=user)
    with pytest.raises(Revoked, match="was revoked on"):
        personal_token_rename(personal_token=stale, name="Renamed", by=user)
    with pytest.raises(Revoked):
        token_networks_set(stale, networks=["198.51.100.0/24"], by=user)
    assert _unchanged(pat)


@pytest.mark.parametrize("edit", EDITS)
def test_an_expired_token_can_still_be_renamed_and_limited(signed_in, user, edit):
    pat, _ = personal_token_create(user=user, name="CLI")
    PersonalAccessToken.objects.filter(pk=pat.pk).update(expires_at=timezone.now())
    name, data = EDITS[edit]
    assert signed_in.post(reverse(name, args=[pat.pk]), data, headers=HTMX).status_code == 200
    assert not _unchanged(pat)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_on_its_way_waits_for_the_revocation_in_progress_and_is_refused(user, edit):
    """The token is being revoked (in another tab, or by a leak report) when the edit
    arrives: the edit waits for it, then answers 404 and changes nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is shown on PostgreSQL.")
    from django.test import Client

    pat, _ = personal_token_create(user=user, name="CLI")
    browser = Client()
    browser.force_login(user)
    name, data = EDITS[edit]
    answers = []
    with another_connection() as other:
        other.execute(
            "UPDATE apikeys_personalaccesstoken SET revoked_at = now() WHERE id = %s", [pat.pk]
        )
        waited = commit_once_it_waits(
            other,
            lambda: answers.append(browser.post(reverse(name, args=[pat.pk]), data, headers=HTMX)),
        )
    assert waited
    assert [a.status_code for a in answers] == [404]
    assert _unchanged(pat)
