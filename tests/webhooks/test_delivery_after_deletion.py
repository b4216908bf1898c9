"""deliver() over a deleted project: what its endpoints had waiting stays unsent, alerts
raised for it (before the deletion, or by a detector run that read its calls as it
committed) are never queued for them, and every other project's deliveries still go."""

from __future__ import annotations

from accounts.models import Project
from accounts.services import project_delete
from webhooks import delivery as delivery_module
from webhooks.delivery import deliver
from webhooks.models import WebhookDelivery


def test_nothing_is_sent_for_a_deleted_project_and_the_others_still_go(
    receiver, project, user, api_key, make_user, make_endpoint, make_flag
):
    other = Project.objects.for_user(make_user(email="other-owner@example.com")).get()
    make_endpoint(project, receiver.url("/deleted"))
    make_endpoint(other, receiver.url("/other"))
    make_flag(project, api_key[0])
    deliver(now=None)  # queued, and this first one sent
    receiver.requests.clear()
    WebhookDelivery.objects.update(status=WebhookDelivery.Status.PENDING)  # owed again
    project_delete(project=project, by=user)
    make_flag(project, summary="Raised as the deletion committed")
    make_flag(other)

    result = deliver()

    assert [r.path for r in receiver.requests] == ["/other"]
    assert result.errors == 0
    assert not WebhookDelivery.objects.filter(
        endpoint__project=project, flag__summary="Raised as the deletion committed"
    ).exists()


def test_an_endpoint_disabled_by_a_deletion_while_a_run_enqueues_is_sent_nothing(
    receiver, project, user, api_key, make_endpoint, make_flag, monkeypatch
):
    """The run read the endpoint as enabled, then the deletion committed: what it queues
    for it waits, unsent, as everything else of the deleted project does."""
    make_endpoint(project, receiver.url("/deleted"))
    make_flag(project, api_key[0])
    real = delivery_module._enqueue_for

    def deleted_meanwhile(endpoint, now):
        project_delete(project=Project.objects.get(pk=project.pk), by=user)
        return real(endpoint, now)

    monkeypatch.setattr(delivery_module, "_enqueue_for", deleted_meanwhile)

    result = deliver()

    assert receiver.requests == []
    assert result.errors == 0 and result.succeeded == 0
