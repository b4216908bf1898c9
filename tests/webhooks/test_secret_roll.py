"""Rolling an endpoint's signing secret: a secret that leaked (a log, a repository, a
former colleague) let anyone sign deliveries the endpoint would believe, and the only way
out was to delete the endpoint, losing its log and every alert waiting for it, and add it
again. An owner now rolls it: the new secret is shown once and signs every delivery from
then on, retries included; the old one signs nothing more."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.accounts.test_sudo import go_stale
from tests.webhooks.test_signing import verify
from webhooks.delivery import deliver
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_send_test


def _roll_url(endpoint: WebhookEndpoint) -> str:
    return reverse(
        "webhooks:webhook_secret_roll",
        kwargs={"slug": endpoint.project.slug, "endpoint_id": endpoint.pk},
    )


def _secret_in(html: str) -> str:
    [secret] = re.findall(r"whsec_[A-Za-z0-9_-]{40,}", html)
    return secret


def test_an_owner_rolls_the_secret_sees_the_new_one_once_and_it_signs_what_follows(
    signed_in, project, user, receiver, make_endpoint
):
    endpoint, old = make_endpoint(project, receiver.url())
    detail = reverse(
        "webhooks:webhook_detail", kwargs={"slug": project.slug, "endpoint_id": endpoint.pk}
    )
    assert "Roll secret" in signed_in.get(detail).content.decode()

    response = signed_in.post(_roll_url(endpoint), {"form_id": "r1"})

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    new = _secret_in(response.content.decode())
    assert new != old
    endpoint.refresh_from_db()
    assert new not in endpoint.secret_encrypted and endpoint.secret_hint == new[:10] + "…"
    assert new not in signed_in.get(detail).content.decode()  # shown once
    event = AuditEvent.objects.get(action="webhook.secret_rolled", project=project)
    assert event.actor == user and old not in str(event.metadata) and new not in str(event.metadata)

    webhook_send_test(endpoint=endpoint, by=user)
    deliver()
    [received] = receiver.requests
    signature = received.headers["Reminix-Signature"]
    assert verify(new, signature, received.body)
    assert not verify(old, signature, received.body)


def test_sending_the_same_roll_form_again_rolls_nothing_more(signed_in, project, make_endpoint):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/x")
    first = signed_in.post(_roll_url(endpoint), {"form_id": "r1"})
    new = _secret_in(first.content.decode())
    again = signed_in.post(_roll_url(endpoint), {"form_id": "r1"})
    assert again.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret_hint == new[:10] + "…"
    assert AuditEvent.objects.filter(action="webhook.secret_rolled").count() == 1


def test_rolling_asks_who_you_are_when_the_last_check_is_old(signed_in, project, make_endpoint):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/x")
    hint = endpoint.secret_hint
    go_stale(signed_in)
    response = signed_in.post(_roll_url(endpoint), {"form_id": "r1"})
    assert "whsec_" not in response.content.decode().replace(hint, "")
    endpoint.refresh_from_db()
    assert endpoint.secret_hint == hint
    assert not AuditEvent.objects.filter(action="webhook.secret_rolled").exists()


@pytest.mark.parametrize("who", ["member", "other_owner"])
def test_only_this_projects_owners_can_roll(
    client, project, make_user, make_project, make_endpoint, who
):
    from accounts.models import Membership
    from accounts.services import membership_add

    endpoint, _ = make_endpoint(project, "https://hooks.example.com/x")
    hint = endpoint.secret_hint
    person = make_user(email="eve@example.com")
    if who == "member":
        owner = project.memberships.get(role="owner").user
        membership_add(project=project, user=person, role=Membership.Role.MEMBER, by=owner)
    else:
        make_project(person)
    client.force_login(person)
    response = client.post(_roll_url(endpoint), {"form_id": "r1"})
    assert response.status_code in (403, 404)
    endpoint.refresh_from_db()
    assert endpoint.secret_hint == hint


def test_a_slack_endpoint_has_no_secret_to_roll(signed_in, project, make_endpoint):
    endpoint, _ = make_endpoint(project, "https://hooks.slack.com/services/T/B/x", format="slack")
    hint = endpoint.secret_hint
    response = signed_in.post(_roll_url(endpoint), {"form_id": "r1"})
    assert response.status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.secret_hint == hint


def test_an_endpoint_another_owner_deleted_meanwhile_is_a_404_and_no_roll_is_audited(
    signed_in, project, user, receiver, make_endpoint, monkeypatch
):
    """Two owners: one deletes the endpoint while the other's roll waits for the project
    (owner_hold). The roll found no row to change, yet recorded webhook.secret_rolled for
    an endpoint that was gone, then failed with a 500."""
    import webhooks.views
    from webhooks.services import webhook_delete

    endpoint, _ = make_endpoint(project, receiver.url())
    found_before_the_delete = WebhookEndpoint.objects.select_related("project").get(pk=endpoint.pk)
    monkeypatch.setattr(
        webhooks.views, "_endpoint", lambda request, endpoint_id: found_before_the_delete
    )
    webhook_delete(endpoint=endpoint, by=user)

    response = signed_in.post(_roll_url(found_before_the_delete), {"form_id": "r9"})

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="webhook.secret_rolled").exists()
