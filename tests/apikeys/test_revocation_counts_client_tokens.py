"""A key's revocation says on the audit trail how many of its client tokens still worked
and ended with it: a browser session cut off by a revocation is then explained by the
event that did it."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from apikeys.services import (
    api_key_revoke,
    api_key_roll,
    client_token_create,
    client_tokens_revoke_for_key,
)
from audit.models import AuditEvent


def revoked_event(key) -> AuditEvent:  # type: ignore[no-untyped-def]
    return AuditEvent.objects.get(action="api_key.revoked", target_id=str(key.pk))


def test_the_revocation_counts_the_client_tokens_that_still_worked(user, project, make_key):
    key, _ = make_key(project)
    for n in range(2):
        client_token_create(project=project, api_key=key, context={"u": n})
    expired, _ = client_token_create(project=project, api_key=key, context={"u": "expired"})
    expired.expires_at = timezone.now() - timedelta(seconds=1)
    expired.save(update_fields=["expires_at"])
    revoked, _ = client_token_create(project=project, api_key=key, context={"u": "revoked"})
    revoked.revoke(by=user)
    other, _ = make_key(project, name="Other")
    client_token_create(project=project, api_key=other, context={"u": "other key"})

    assert api_key_revoke(api_key=key, by=user)

    assert revoked_event(key).metadata == {"client_tokens_ended": 2}


def test_tokens_already_ended_with_all_of_the_keys_or_with_a_rolled_secret_are_not_counted(
    user, project, make_key
):
    key, _ = make_key(project)
    client_token_create(project=project, api_key=key, context={"u": "before revoke-all"})
    client_tokens_revoke_for_key(api_key=key, by=user)
    client_token_create(project=project, api_key=key, context={"u": "old secret"})
    api_key_roll(api_key=key, by=user, overlap=timedelta(0))
    key.refresh_from_db()  # as the API reads it: its new secret mints the next one
    client_token_create(project=project, api_key=key, context={"u": "new secret"})

    key = type(key).objects.get(pk=key.pk)
    key.client_tokens_revoked_through = (
        None  # as a copy loaded before the revoke-all: the row counts
    )
    assert api_key_revoke(api_key=key, by=user)

    assert revoked_event(key).metadata == {"client_tokens_ended": 1}


def test_a_key_that_minted_none_ended_none_and_a_second_revoke_records_nothing(
    user, project, make_key
):
    key, _ = make_key(project)
    assert api_key_revoke(api_key=key, by=user)
    assert not api_key_revoke(api_key=key, by=user)
    assert revoked_event(key).metadata == {"client_tokens_ended": 0}


def test_the_audit_log_shows_how_many_client_tokens_ended(signed_in, user, project, make_key):
    key, _ = make_key(project)
    for n in range(3):
        client_token_create(project=project, api_key=key, context={"u": n})
    api_key_revoke(api_key=key, by=user)

    page = signed_in.get(reverse("accounts:project_audit", args=[project.slug])).content.decode()

    assert "<dt>client tokens ended</dt> <dd>3</dd>" in page


def test_the_count_reads_each_token_as_the_api_does(user, project, make_key):
    """working_of_key() restates, in one statement, what ClientToken.end_reason_at()
    decides per token: the two must agree on every token, or the audit event's count
    drifts from what the revocation really ended."""
    from apikeys.models import ClientToken

    key, _ = make_key(project)
    client_token_create(project=project, api_key=key, context={"u": "before revoke-all"})
    client_tokens_revoke_for_key(api_key=key, by=user)
    client_token_create(project=project, api_key=key, context={"u": "old secret, overlap"})
    api_key_roll(api_key=key, by=user, overlap=timedelta(hours=1))
    key.refresh_from_db()
    client_token_create(project=project, api_key=key, context={"u": "new secret"})
    expired, _ = client_token_create(project=project, api_key=key, context={"u": "expired"})
    expired.expires_at = timezone.now() - timedelta(seconds=1)
    expired.save(update_fields=["expires_at"])
    revoked, _ = client_token_create(project=project, api_key=key, context={"u": "revoked"})
    revoked.revoke(by=user)
    client_token_create(project=project, api_key=key, context={"u": "next roll ends it"})
    api_key_roll(api_key=key, by=user, overlap=timedelta(0))
    key.refresh_from_db()
    alive, _ = client_token_create(project=project, api_key=key, context={"u": "alive"})

    seen = []
    for moment in (timezone.now(), timezone.now() + timedelta(hours=2)):
        working = set(ClientToken.objects.working_of_key(key, moment).values_list("pk", flat=True))
        tokens = ClientToken.objects.filter(api_key=key).select_related("api_key")
        expected = {token.pk for token in tokens if token.end_reason_at(moment) is None}
        assert working == expected
        seen.append(working)
    assert alive.pk in seen[0]  # (both ways: a token that works, and some that do not)
    assert len(seen[0]) < ClientToken.objects.filter(api_key=key).count()
