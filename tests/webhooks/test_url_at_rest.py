"""An endpoint's URL is a credential (a Slack incoming webhook's path is; so may a
generic endpoint's query be): it is stored encrypted like the signing secret, and a
database dump or read replica shows none of it."""

from __future__ import annotations

import pytest
from cryptography.fernet import InvalidToken
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from audit.models import AuditEvent
from webhooks.delivery import deliver
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import secret_decrypt, url_encrypt

SLACK_PATH = "/services/T0001/B0001/XXXXslackSECRETxxxx"
BEFORE_ENCRYPTION = [("webhooks", "0003_delivery_age_index")]


def _raw_rows() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {WebhookEndpoint._meta.db_table}")  # noqa: S608
        return repr(cursor.fetchall())


def test_a_slack_url_is_nowhere_in_the_stored_row_and_deliveries_still_reach_it(
    receiver, project, make_endpoint, make_flag
):
    url = receiver.url(f"{SLACK_PATH}?k=querySECRET")
    endpoint, _ = make_endpoint(project, url, format="slack")
    stored = repr(list(WebhookEndpoint.objects.values())) + _raw_rows()
    assert "XXXXslackSECRETxxxx" not in stored and "querySECRET" not in stored
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).url == url
    make_flag(project)
    assert deliver().succeeded == 1
    assert [r.path for r in receiver.requests] == [f"{SLACK_PATH}?k=querySECRET"]


def test_a_url_still_reads_after_secret_key_is_rotated_into_the_fallbacks(
    settings, receiver, project, make_endpoint, make_flag
):
    url = receiver.url("/hook?k=v")
    endpoint, _ = make_endpoint(project, url)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-0123456789abcdef0123456789abcdef"
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).url == url
    make_flag(project)
    assert deliver().succeeded == 1
    assert [r.path for r in receiver.requests] == ["/hook?k=v"]


def test_the_url_and_the_secret_are_encrypted_under_different_keys(project, make_endpoint):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/a")
    with pytest.raises(InvalidToken):
        secret_decrypt(endpoint.url_encrypted)


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_added_before_urls_were_encrypted_keeps_its_url_encrypted_and_back():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("webhooks")
    executor.migrate(BEFORE_ENCRYPTION)
    old = MigrationExecutor(connection).loader.project_state(BEFORE_ENCRYPTION).apps
    try:
        project = old.get_model("accounts", "Project").objects.create(name="Old", slug="old")
        url = f"https://hooks.slack.com{SLACK_PATH}"
        pk = (
            old.get_model("webhooks", "WebhookEndpoint")
            .objects.create(
                project=project, url=url, format="slack", secret_encrypted="", secret_hint=""
            )
            .pk
        )
        assert "XXXXslackSECRETxxxx" in _raw_rows()

        MigrationExecutor(connection).migrate(latest)
        assert "XXXXslackSECRETxxxx" not in _raw_rows()
        assert WebhookEndpoint.objects.get(pk=pk).url == url

        MigrationExecutor(connection).migrate(BEFORE_ENCRYPTION)
        back = old.get_model("webhooks", "WebhookEndpoint").objects.get(pk=pk)
        assert back.url == url
    finally:
        MigrationExecutor(connection).migrate(latest)


def test_a_url_that_no_longer_decrypts_fails_its_delivery_and_the_pages_still_answer(
    settings, client, user, project, receiver, make_endpoint, make_flag
):
    """SECRET_KEY replaced without keeping the old one in SECRET_KEY_FALLBACKS: the
    operator's mistake, shown as a failed delivery and an unreadable address, never a 500
    or a delivery stuck "sending"."""
    endpoint, _ = make_endpoint(project, receiver.url("/hook"))
    make_flag(project)
    settings.SECRET_KEY = "a-new-secret-key-0123456789abcdef0123456789abcdef"
    result = deliver()
    assert (result.succeeded, result.failed) == (0, 1)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_error) == ("failed", "Unexpected error: InvalidToken")
    assert receiver.requests == []
    client.force_login(user)
    for name in ("webhook_list", "webhook_detail"):
        args = [project.slug] + ([endpoint.pk] if name == "webhook_detail" else [])
        response = client.get(reverse(f"webhooks:{name}", args=args))
        assert response.status_code == 200
        assert "address unreadable" in response.content.decode()


@pytest.mark.parametrize(
    "stored",
    [
        # Python before 3.11.4 read a bracketed name as a host; today's urlsplit refuses it.
        "https://[hooks.example.com]/hook",
        "https://[::1/hook",  # a bracket without its pair, as a hand edit or restore left it
    ],
)
def test_an_endpoint_whose_stored_url_no_longer_parses_can_still_be_seen_and_removed(
    signed_in, project, make_endpoint, make_flag, stored
):
    """The list, the endpoint's page and its buttons named it by urlsplit() of its URL,
    which raises ValueError for these: the owner's Settings → Webhooks was a 500, and the
    endpoint could be neither disabled nor deleted. Its deliveries fail as any address that
    cannot be parsed does."""
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/hook")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url_encrypted=url_encrypt(stored))
    make_flag(project)
    assert deliver().failed == 1
    assert WebhookDelivery.objects.get().last_error == "The address cannot be parsed."
    for name in ("webhook_list", "webhook_detail"):
        args = [project.slug] + ([endpoint.pk] if name == "webhook_detail" else [])
        response = signed_in.get(reverse(f"webhooks:{name}", args=args))
        assert response.status_code == 200
        assert "address unparsable" in response.content.decode()
    for name in ("webhook_test", "webhook_disable", "webhook_delete"):
        response = signed_in.post(reverse(f"webhooks:{name}", args=[project.slug, endpoint.pk]))
        assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists()
    labels = AuditEvent.objects.filter(
        action__in=("webhook.test_sent", "webhook.disabled", "webhook.deleted")
    ).values_list("target_label", flat=True)
    assert sorted(labels) == ["(address unparsable)"] * 3
