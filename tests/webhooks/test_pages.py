"""Settings → Webhooks: owners only, another project's endpoints are 404, hostile input
is a form error, and each change is audited."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project
from accounts.services import membership_remove, user_sign_up
from audit.models import AuditEvent
from webhooks import delivery as delivery_module
from webhooks.delivery import BACKOFF, deliver
from webhooks.models import MAX_ENDPOINTS_PER_PROJECT, WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_create, webhook_send_test
from webhooks.transport import Outcome

from ..conftest import HTMX, PASSWORD


def _url(name, project, **kwargs):
    return reverse(f"webhooks:{name}", kwargs={"slug": project.slug, **kwargs})


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(signed_in, project, local_delivery):
    page = signed_in.get(_url("webhook_list", project))
    assert page.status_code == 200 and b"No webhook endpoints yet" in page.content
    response = signed_in.post(
        _url("webhook_create", project),
        {
            "url": "https://hooks.example.com/a/b?secret=1",
            "format": "generic",
            "min_severity": "high",
            "form_id": "f1",
        },
    )
    assert response.status_code == 201
    assert response["Cache-Control"].startswith("max-age=0")
    endpoint = WebhookEndpoint.objects.get()
    content = response.content.decode()
    secret_start = content.index("whsec_")
    secret = content[secret_start : content.index("<", secret_start)]
    assert len(secret) > 40 and secret not in endpoint.secret_encrypted
    again = signed_in.post(
        _url("webhook_create", project),
        {
            "url": "https://hooks.example.com/",
            "format": "generic",
            "min_severity": "low",
            "form_id": "f1",
        },
    )
    assert again.status_code == 302 and WebhookEndpoint.objects.count() == 1
    listing = signed_in.get(_url("webhook_list", project)).content.decode()
    assert secret not in listing and "secret=1" not in listing and "/a/b" not in listing
    assert "<bdi>https://hooks.example.com</bdi>/…" in listing
    assert AuditEvent.objects.filter(action="webhook.created", project=project).exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/\x00",
        "https://hooks.example.com/a\nb",
        "https://hooks.example.com/" + "a" * 5000,
        "https://hooks².example.com/",
        "http://hooks.example.com/",
        "https://10.0.0.1/",
    ],
)
def test_hostile_addresses_are_answered_with_a_form_error(signed_in, project, url):
    response = signed_in.post(
        _url("webhook_create", project),
        {"url": url, "format": "generic", "min_severity": "low", "form_id": "x"},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert b'aria-invalid="true"' in response.content
    assert WebhookEndpoint.objects.count() == 0


def test_a_lone_surrogate_in_the_raw_body_is_a_form_error(signed_in, project):
    response = signed_in.generic(
        "POST",
        _url("webhook_create", project),
        b"url=https%3A%2F%2Fhooks.example.com%2F%ED%A0%80&format=generic&min_severity=low",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 422


def test_the_eleventh_endpoint_is_refused(signed_in, project, user, make_endpoint):
    for n in range(MAX_ENDPOINTS_PER_PROJECT):
        make_endpoint(project, f"https://hooks{n}.example.com/")
    response = signed_in.post(
        _url("webhook_create", project),
        {"url": "https://more.example.com/", "format": "slack", "min_severity": "low"},
    )
    assert response.status_code == 409
    assert WebhookEndpoint.objects.count() == MAX_ENDPOINTS_PER_PROJECT


def test_members_who_are_not_owners_get_403_and_no_tab(client, project, make_user):
    member = make_user()
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    client.force_login(member)
    assert client.get(_url("webhook_list", project)).status_code == 403
    settings_page = client.get(reverse("accounts:project_settings", args=[project.slug]))
    assert b"Webhooks" not in settings_page.content


def test_an_owner_whose_email_is_unconfirmed_adds_no_endpoint(client, db, local_delivery):
    # An endpoint's secret is shown once, as a key's, and its address is where the server
    # then sends requests: like keys, PATs and invitations, it waits for a confirmed
    # address, or anyone could sign up with a made-up one and have us call any host.
    owner = user_sign_up(email="fresh@example.com", password=PASSWORD, name="New")
    project = Project.objects.for_user(owner).get()
    client.force_login(owner)
    form = {"url": "https://hooks.example.com/", "format": "generic", "min_severity": "low"}
    create = _url("webhook_create", project)
    assert client.get(create).status_code == 403
    panel = client.get(create, headers={**HTMX, "HX-Target": "key-panel"})
    assert 'id="key-panel"' in panel.content.decode()
    assert "Send the link again" in panel.content.decode()
    assert client.post(create, {**form, "form_id": "f"}).status_code == 403
    assert not WebhookEndpoint.objects.exists()
    # Nor is a secret rolled for one made before this was asked.
    endpoint, _ = webhook_create(project=project, created_by=owner, **form)
    before = endpoint.secret_encrypted
    roll = _url("webhook_secret_roll", project, endpoint_id=endpoint.pk)
    assert client.post(roll).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.secret_encrypted == before


def test_an_endpoint_whose_creator_left_is_marked_on_the_list_and_its_page(
    signed_in, user, project, make_user, local_delivery
):
    leaver = make_user(email="leaver@example.com", name="Lee")
    membership = Membership.objects.create(user=leaver, project=project, role=Membership.Role.OWNER)
    made = {"project": project, "format": "generic", "min_severity": "low"}
    theirs, _ = webhook_create(url="https://theirs.example.com/", created_by=leaver, **made)
    ours, _ = webhook_create(url="https://ours.example.com/", created_by=user, **made)
    listing = signed_in.get(_url("webhook_list", project)).content.decode()
    assert "by <bdi>Lee</bdi>" in listing and "creator left" not in listing

    membership_remove(membership=membership, by=user)
    rows = signed_in.get(_url("webhook_list", project)).content.decode().split("<tr")
    [their_row] = [row for row in rows if "theirs.example.com" in row]
    [our_row] = [row for row in rows if "ours.example.com" in row]
    assert "creator left" in their_row and "<bdi>Lee</bdi> is no longer a member" in their_row
    assert "creator left" not in our_row
    detail = signed_in.get(_url("webhook_detail", project, endpoint_id=theirs.pk)).content
    assert b"leaver@example.com, who is no longer a member of this project" in detail
    detail = signed_in.get(_url("webhook_detail", project, endpoint_id=ours.pk)).content
    assert b"no longer a member" not in detail


def test_an_endpoints_page_is_headed_and_titled_by_its_endpoint(signed_in, project, make_endpoint):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/reminix")
    html = signed_in.get(_url("webhook_detail", project, endpoint_id=endpoint.pk)).content.decode()
    headings = [
        re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h1[^>]*>(.*?)</h1>", html, re.DOTALL)
    ]
    assert len(headings) == 1, headings
    assert "https://hooks.example.com" in headings[0]
    [title] = re.findall(r"<title>(.*?)</title>", html, re.DOTALL)
    assert "https://hooks.example.com" in title


def test_an_endpoints_page_has_the_settings_navigation_with_webhooks_current(
    signed_in: Client, project: Project, make_endpoint: Callable[..., tuple[WebhookEndpoint, str]]
) -> None:
    """It led back with "← Webhooks" alone: the other Settings pages (the list of endpoints
    too) carry the Settings navigation, and this one, under Settings → Webhooks, did not."""
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/reminix")
    html = signed_in.get(_url("webhook_detail", project, endpoint_id=endpoint.pk)).content.decode()
    listed = signed_in.get(_url("webhook_list", project)).content.decode()
    nav = re.compile(r'<nav class="subnav" aria-label="Settings">.*?</nav>', re.DOTALL)
    [here], [there] = nav.findall(html), nav.findall(listed)
    assert here == there
    current = re.findall(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>', here)
    assert current == [(_url("webhook_list", project), "Webhooks")]
    assert html.index('aria-label="Settings"') < html.index('id="log-title"')


def test_another_projects_endpoint_ids_are_404(
    signed_in, project, make_user, make_project, make_endpoint
):
    other = make_project(make_user())
    endpoint, _ = make_endpoint(other, "https://hooks.example.com/")
    for name in ("webhook_detail",):
        assert signed_in.get(_url(name, project, endpoint_id=endpoint.pk)).status_code == 404
    for name in ("webhook_test", "webhook_disable", "webhook_delete"):
        assert signed_in.post(_url(name, project, endpoint_id=endpoint.pk)).status_code == 404
    retry = _url("webhook_retry", project, endpoint_id=endpoint.pk, delivery_id=1)
    assert signed_in.post(retry).status_code == 404
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).disabled_at is None


def test_send_test_disable_and_delete_are_audited(signed_in, project, receiver, make_endpoint):
    endpoint, _ = make_endpoint(project, receiver.url())
    response = signed_in.post(_url("webhook_test", project, endpoint_id=endpoint.pk), follow=True)
    delivery = WebhookDelivery.objects.get()
    assert f"Test event {delivery.event_id} is queued".encode() in response.content
    assert b"queued" in response.content and receiver.requests == []
    again = signed_in.post(_url("webhook_test", project, endpoint_id=endpoint.pk), follow=True)
    assert b"A test event is already queued" in again.content
    assert WebhookDelivery.objects.count() == 1
    signed_in.post(_url("webhook_disable", project, endpoint_id=endpoint.pk))
    signed_in.post(_url("webhook_delete", project, endpoint_id=endpoint.pk))
    actions = set(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert {"webhook.test_sent", "webhook.disabled", "webhook.deleted"} <= actions
    assert not WebhookEndpoint.objects.exists()


def test_a_slow_endpoint_does_not_hold_the_owners_request(
    signed_in, project, receiver, make_endpoint
):
    """The test event goes out from the scheduler's run, not from the web worker that the
    API shares: an endpoint that takes its time cannot hold the worker."""
    endpoint, _ = make_endpoint(project, receiver.url())
    receiver.delay = 3.0
    started = time.monotonic()
    response = signed_in.post(_url("webhook_test", project, endpoint_id=endpoint.pk))
    assert response.status_code == 302 and receiver.requests == []
    assert time.monotonic() - started < receiver.delay


def test_the_log_reloads_itself_while_a_delivery_is_queued_and_stops_after(
    signed_in, project, user, receiver, make_endpoint
):
    endpoint, _ = make_endpoint(project, receiver.url())
    detail = _url("webhook_detail", project, endpoint_id=endpoint.pk)
    assert b'hx-trigger="every' not in signed_in.get(detail).content
    webhook_send_test(endpoint=endpoint, by=user)
    page = signed_in.get(detail)
    assert (
        b'hx-trigger="every 3s"' in page.content and b"this log updates by itself" in page.content
    )
    fragment = signed_in.get(detail, headers=HTMX)
    assert fragment.content.lstrip().startswith(b'<section id="deliveries"')
    assert "HX-Request" in fragment["Vary"]
    restored = signed_in.get(detail, headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert b"<html" in restored.content  # a page restored from history is the whole page
    assert b"<html" not in fragment.content and b'hx-trigger="every 3s"' in fragment.content
    deliver()
    fragment = signed_in.get(detail, headers=HTMX)
    assert b"delivered" in fragment.content and b'hx-trigger="every' not in fragment.content


def test_the_logs_reload_interval_is_the_setting(
    signed_in, project, user, receiver, make_endpoint, settings
):
    """The browser tests shorten it to wait less on polls; the product's 3 s is above."""
    settings.WEBHOOK_LOG_REFRESH_SECONDS = 1
    endpoint, _ = make_endpoint(project, receiver.url())
    webhook_send_test(endpoint=endpoint, by=user)
    detail = _url("webhook_detail", project, endpoint_id=endpoint.pk)
    for answer in (signed_in.get(detail), signed_in.get(detail, headers=HTMX)):
        assert b'hx-trigger="every 1s"' in answer.content


def test_retry_now_on_the_delivery_log(signed_in, project, user, receiver, make_endpoint):
    endpoint, _ = make_endpoint(project, receiver.url())
    receiver.status = 500
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    deliver()
    log = signed_in.get(_url("webhook_detail", project, endpoint_id=endpoint.pk))
    assert b"Retry now" in log.content and b"HTTP 500" in log.content
    receiver.status = 200
    retry = _url("webhook_retry", project, endpoint_id=endpoint.pk, delivery_id=delivery.pk)
    response = signed_in.post(retry, follow=True)
    assert f"{delivery.event_id} is queued".encode() in response.content
    assert b"Retry now" not in response.content and len(receiver.requests) == 1
    again = signed_in.post(retry, follow=True)
    assert f"{delivery.event_id} is already queued".encode() in again.content
    retried = AuditEvent.objects.filter(project=project, action="webhook.retry_queued")
    assert retried.count() == 1 and retried.get().metadata == {"event_id": delivery.event_id}
    deliver()
    log = signed_in.get(_url("webhook_detail", project, endpoint_id=endpoint.pk))
    assert b"delivered" in log.content and b"HTTP 200" in log.content
    assert len(receiver.requests) == 2


def test_the_pages_speak_to_customers_not_to_whoever_runs_the_server(
    signed_in, project, receiver, make_endpoint
):
    """The empty list pointed owners at "the README", which they never see, for how to
    check a signature; the test's message and the log spoke of cron and a built-in
    scheduler. Each now says what the owner needs: the header, and when it goes out."""
    empty = signed_in.get(_url("webhook_list", project)).content.decode()
    assert "README" not in empty
    assert "Reminix-Signature" in empty and "HMAC-SHA256" in empty
    endpoint, _ = make_endpoint(project, receiver.url())
    sent = signed_in.post(_url("webhook_test", project, endpoint_id=endpoint.pk), follow=True)
    text = sent.content.decode()
    assert "is queued" in text and "within seconds" in text
    assert "cron" not in text and "scheduler" not in text


def test_the_pages_say_when_a_delivery_goes_out_as_the_readme_does(
    signed_in, project, receiver, make_endpoint
):
    """Sending runs every 10 s (WEBHOOK_DELIVERY_EVERY_SECONDS): the README said deliveries
    go out within seconds, while the list, the log and the queued message said within a
    minute. Each says within seconds now."""
    endpoint, _ = make_endpoint(project, receiver.url())
    sent = signed_in.post(_url("webhook_test", project, endpoint_id=endpoint.pk), follow=True)
    listing = signed_in.get(_url("webhook_list", project)).content.decode()
    log = sent.content.decode()  # the endpoint's page, its test queued
    assert "are sent to these addresses within seconds of being raised" in listing
    assert "is queued and goes out within seconds" in log
    assert "Queued deliveries go out within seconds" in log
    assert "within a minute" not in listing + log


def test_a_missing_address_is_asked_for_beside_its_field(signed_in, project):
    response = signed_in.post(
        _url("webhook_create", project),
        {"url": "", "format": "generic", "min_severity": "low", "form_id": "f2"},
        headers=HTMX,
    )
    assert "Enter the address to send alerts to" in response.content.decode()
    assert "This field is required" not in response.content.decode()


@pytest.mark.parametrize("action", ["webhook_disable", "webhook_delete"])
def test_an_endpoint_another_owner_deleted_meanwhile_is_a_404_and_not_audited_again(
    signed_in, project, user, receiver, make_endpoint, monkeypatch, action
):
    """Two owners at once: one deletes the endpoint while the other's disable (or delete)
    waits for the project (owner_hold). Disable then failed with a 500 reading the row
    back; a second delete recorded webhook.deleted twice."""
    import webhooks.views
    from webhooks.services import webhook_delete

    endpoint, _ = make_endpoint(project, receiver.url())
    found_before_the_delete = WebhookEndpoint.objects.select_related("project").get(pk=endpoint.pk)
    monkeypatch.setattr(
        webhooks.views, "_endpoint", lambda request, endpoint_id: found_before_the_delete
    )
    webhook_delete(endpoint=endpoint, by=user)

    response = signed_in.post(_url(action, project, endpoint_id=found_before_the_delete.pk))

    assert response.status_code == 404
    assert AuditEvent.objects.filter(action="webhook.deleted").count() == 1
    assert not AuditEvent.objects.filter(action="webhook.disabled").exists()


def test_a_test_event_for_an_endpoint_another_owner_deleted_meanwhile_is_a_404(
    signed_in, project, user, receiver, make_endpoint, monkeypatch
):
    """Two owners at once: one deletes the endpoint while the other's "Send a test event"
    waits for the project (owner_hold). The delivery was then made for a row that was
    gone: the foreign key failed at the commit, a 500."""
    import webhooks.views
    from webhooks.services import webhook_delete

    endpoint, _ = make_endpoint(project, receiver.url())
    found_before_the_delete = WebhookEndpoint.objects.select_related("project").get(pk=endpoint.pk)
    monkeypatch.setattr(
        webhooks.views, "_endpoint", lambda request, endpoint_id: found_before_the_delete
    )
    webhook_delete(endpoint=endpoint, by=user)

    response = signed_in.post(_url("webhook_test", project, endpoint_id=found_before_the_delete.pk))

    assert response.status_code == 404
    assert not WebhookDelivery.objects.exists()
    assert not AuditEvent.objects.filter(action="webhook.test_sent").exists()


def test_retrying_a_delivery_of_an_endpoint_another_owner_deleted_meanwhile_is_a_404(
    signed_in, project, user, receiver, make_endpoint, monkeypatch
):
    """The delivery went with its endpoint while "Retry now" waited for the project:
    reading it back failed with a 500."""
    import webhooks.views
    from webhooks.services import webhook_delete

    endpoint, _ = make_endpoint(project, receiver.url())
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    assert delivery is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
    stale_endpoint = WebhookEndpoint.objects.select_related("project").get(pk=endpoint.pk)
    stale_delivery = WebhookDelivery.objects.select_related("endpoint__project").get(pk=delivery.pk)
    monkeypatch.setattr(webhooks.views, "_endpoint", lambda request, endpoint_id: stale_endpoint)
    monkeypatch.setattr(webhooks.views, "get_object_or_404", lambda *a, **kw: stale_delivery)
    webhook_delete(endpoint=endpoint, by=user)

    response = signed_in.post(
        _url("webhook_retry", project, endpoint_id=stale_endpoint.pk, delivery_id=delivery.pk)
    )

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="webhook.retry_queued").exists()


@pytest.mark.parametrize("port", [22, 25, 6379, 9200, 8080])
def test_an_address_on_a_port_other_than_https_own_is_refused_beside_the_field(
    signed_in, project, port
):
    """Any public port was accepted: an owner could point endpoints at another host's SSH,
    mail or database ports and read from the delivery log what answered our address."""
    response = signed_in.post(
        _url("webhook_create", project),
        {
            "url": f"https://hooks.example.com:{port}/a",
            "format": "generic",
            "min_severity": "low",
            "form_id": "x",
        },
        headers=HTMX,
    )
    assert response.status_code == 422
    assert b'aria-invalid="true"' in response.content
    assert b"port 443 or 8443" in response.content
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com:443/a", "https://hooks.example.com:8443/a"]
)
def test_an_address_on_port_443_or_8443_is_accepted(signed_in, project, url):
    response = signed_in.post(
        _url("webhook_create", project),
        {"url": url, "format": "generic", "min_severity": "low", "form_id": "x"},
    )
    assert response.status_code == 201
    assert WebhookEndpoint.objects.count() == 1


def test_an_endpoint_added_on_another_port_before_the_rule_is_still_sent_and_says_so(
    signed_in, user, project, monkeypatch
):
    """Endpoints added before ports were limited keep receiving alerts (stopping them
    unsaid would lose a customer's alerts); their list row and page say the port is no
    longer accepted for new ones."""
    import socket
    from urllib.parse import urlsplit

    from webhooks.addresses import resolve

    made = {"project": project, "format": "generic", "min_severity": "low", "created_by": user}
    older, _ = webhook_create(url="https://older.example.com:9000/hook", **made)
    usual, _ = webhook_create(url="https://usual.example.com/hook", **made)
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))
        ],
    )
    assert resolve(urlsplit(older.url))[1] == 9000  # still sent to

    rows = signed_in.get(_url("webhook_list", project)).content.decode().split("<tr")
    [older_row] = [row for row in rows if "older.example.com" in row]
    [usual_row] = [row for row in rows if "usual.example.com" in row]
    assert "port 9000" in older_row and "port 443 or 8443" in older_row
    assert "port 443 or 8443" not in usual_row
    detail = signed_in.get(_url("webhook_detail", project, endpoint_id=older.pk)).content
    assert b"port 443 or 8443" in detail


def test_the_add_form_names_the_ports_an_address_may_use_before_it_is_sent(signed_in, project):
    """Only 443 and 8443 are accepted (4d998ec); an owner whose receiver listens elsewhere
    should read that beside the field, not learn it from a refusal."""
    page = signed_in.get(_url("webhook_create", project))
    assert page.status_code == 200
    help_text = re.search(rb'id="id_url_helptext"[^>]*>(.*?)</', page.content, re.S)
    assert help_text is not None
    assert b"port 443 or 8443" in help_text.group(1)


def _status_shown(signed_in, project, endpoint) -> tuple[str, str]:
    """The badge of the endpoint's newest delivery on the list, and on its log."""
    badge = re.compile(r'<span class="badge[^"]*">([^<]+)</span>')
    listing = signed_in.get(_url("webhook_list", project)).content.decode()
    log = signed_in.get(_url("webhook_detail", project, endpoint_id=endpoint.pk)).content.decode()
    return badge.findall(listing.split("<tbody")[1])[0], badge.findall(log.split("<tbody")[1])[0]


def test_a_failed_delivery_refused_a_dns_lookup_on_its_retry_still_shows_failed(
    signed_in, project, receiver, make_endpoint, make_flag, monkeypatch
):
    """Refused for want of a free lookup, a retry costs no attempt and goes back in line;
    shown as "queued" it hid that its last attempt had failed."""
    endpoint, _ = make_endpoint(project, receiver.url())
    make_flag(project)
    receiver.status = 500
    now = timezone.now()
    deliver(now=now)
    assert _status_shown(signed_in, project, endpoint) == ("failed, will retry",) * 2

    refused = Outcome(None, "Too many DNS lookups are still unanswered.", attempted=False)
    monkeypatch.setattr(delivery_module, "_send", lambda delivery, endpoint: refused)
    deliver(now=now + BACKOFF[0])

    row = WebhookDelivery.objects.get()
    assert row.attempts == 1 and row.next_attempt_at == now + BACKOFF[0] + BACKOFF[0]
    assert _status_shown(signed_in, project, endpoint) == ("failed, will retry",) * 2


def test_a_delivery_refused_a_dns_lookup_before_any_attempt_shows_queued(
    signed_in, project, receiver, make_endpoint, make_flag, monkeypatch
):
    endpoint, _ = make_endpoint(project, receiver.url())
    make_flag(project)
    refused = Outcome(None, "Too many DNS lookups are still unanswered.", attempted=False)
    monkeypatch.setattr(delivery_module, "_send", lambda delivery, endpoint: refused)
    deliver()
    assert WebhookDelivery.objects.get().attempts == 0
    assert _status_shown(signed_in, project, endpoint) == ("queued",) * 2


def test_an_address_with_a_token_is_refused_beside_its_field_and_never_stored(signed_in, project):
    token = "reminix_sk_" + "Q" * 36
    response = signed_in.post(
        _url("webhook_create", project),
        {
            "url": f"https://hooks.example.com/in?key={token}",
            "format": "generic",
            "min_severity": "low",
            "form_id": "f3",
        },
        headers=HTMX,
    )
    page = response.content.decode()
    assert response.status_code == 422
    assert 'aria-invalid="true"' in page and "never stored in a webhook" in page
    assert WebhookEndpoint.objects.count() == 0
