"""Network allowlists per key and per PAT (issue 11, point 3): calls from elsewhere get 403
ip_not_allowed, are logged on the key and raise an alert; the list is stored with the
token (no extra round trip) and edited on the key's usage page, starting from the
networks the key was used from."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.detection import detect
from alerts.models import Flag
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import networks as networks_service
from apikeys.services import personal_token_create, token_networks_set
from audit.models import AuditEvent
from core.networks import allowed, parse_networks
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api, the_second_waits_for_the_first, usage_call
from usage.models import UsageIp, UsageRecord
from usage.writer import usage_write

INVOKE = "/v1/agents/my-agent/invoke"


def networks_url(project, key):
    return reverse("usage:api_key_networks", args=[project.slug, key.pk])


def from_address(api: Api, address: str) -> Api:
    api.client.defaults["REMOTE_ADDR"] = address
    return api


# Parsing and matching


def test_lines_are_canonical_and_every_bad_one_is_named():
    networks, problems = parse_networks(
        "203.0.113.7/24\n2001:DB8::/32, 198.51.100.9\n\n203.0.113.0/24\n"
        "1²7.0.0.1\n0.0.0.0/0\n10.0.0.0/33\nfe80::1%eth0\nnot an address"
    )
    assert networks == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.9/32"]
    assert len(problems) == 5
    assert "1²7.0.0.1" in problems[0] and "every address" in problems[1]


def test_ipv4_written_as_ipv6_is_refused_and_suggested_as_ipv4():
    from core.networks import network_around

    assert network_around("::ffff:203.0.113.7") == "203.0.113.0/24"
    networks, problems = parse_networks("::ffff:203.0.113.0/120")
    assert networks == [] and "write it as IPv4" in problems[0]


def test_an_address_matches_by_version_and_ipv4_mapped_ipv6_counts_as_ipv4():
    assert allowed("203.0.113.50", ["203.0.113.0/24"])
    assert not allowed("203.0.114.1", ["203.0.113.0/24"])
    assert not allowed("203.0.113.50", ["2001:db8::/32"])
    assert allowed("::ffff:203.0.113.50", ["203.0.113.0/24"])
    assert not allowed("", ["203.0.113.0/24"]) and not allowed("x", ["203.0.113.0/24"])
    assert allowed("anything", [])


# The API


def test_a_key_limited_to_a_network_works_there_and_is_refused_elsewhere(api, api_key, user):
    key = api_key[0]
    token_networks_set(key, networks=["203.0.113.0/24"], by=user)
    assert_ok(from_address(api, "203.0.113.20").post(INVOKE, {"prompt": "inside"}))
    error = assert_error(
        from_address(api, "198.51.100.7").post(INVOKE, {"prompt": "outside"}),
        403,
        "ip_not_allowed",
    )
    assert "198.51.100.7" in error["message"]
    refused = UsageRecord.objects.get(error_code="ip_not_allowed")
    assert refused.api_key_id == key.pk and refused.ip == "198.51.100.7"

    token_networks_set(key, networks=[], by=user)  # any network again
    assert_ok(api.post(INVOKE, {"prompt": "anywhere"}))


def test_the_check_adds_no_query(api, api_key, user):
    token_networks_set(api_key[0], networks=["127.0.0.0/8"], by=user)
    assert_ok(api.post(INVOKE, {"prompt": "warm"}))
    with CaptureQueriesContext(connection) as with_list:
        assert_ok(api.post(INVOKE, {"prompt": "again"}))
    token_networks_set(api_key[0], networks=[], by=user)
    with CaptureQueriesContext(connection) as without:
        assert_ok(api.post(INVOKE, {"prompt": "again"}))
    assert len(with_list.captured_queries) == len(without.captured_queries)


def test_client_tokens_minted_by_a_limited_key_are_used_from_anywhere(api, api_key, user):
    token_networks_set(api_key[0], networks=["127.0.0.0/8"], by=user)
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    browser = Api(Client(REMOTE_ADDR="198.51.100.7"), minted["token"])
    assert_ok(browser.get("/client/token"))
    # The key itself, from there, is refused: minting included.
    outside = from_address(api, "198.51.100.7")
    assert_error(outside.post("/v1/client-tokens", {"context": {}}), 403, "ip_not_allowed")


def test_a_pat_limited_to_a_network_is_refused_elsewhere(project, user):
    pat, secret = personal_token_create(user=user, name="CLI")
    token_networks_set(pat, networks=["2001:db8::/32"], by=user)
    inside = Api(Client(REMOTE_ADDR="2001:db8::5"), secret)
    outside = Api(Client(REMOTE_ADDR="203.0.113.9"), secret)
    headers = {"X-Project": project.slug}
    assert_ok(inside.get("/v1/projects/current", headers=headers))
    assert_error(outside.get("/v1/projects/current", headers=headers), 403, "ip_not_allowed")
    event = AuditEvent.objects.get(action="personal_token.networks_changed")
    assert event.metadata == {"from": [], "to": ["2001:db8::/32"]}


def test_a_pats_refused_calls_are_logged_on_it_and_raise_no_project_alert(project, user):
    """As the README says: a PAT's calls from outside its networks are on its usage page,
    with the address; alerts are a project's, and raise nothing for them."""
    pat, secret = personal_token_create(user=user, name="CLI")
    token_networks_set(pat, networks=["2001:db8::/32"], by=user)
    outside = Api(Client(REMOTE_ADDR="203.0.113.9"), secret)
    for _ in range(3):
        outside.get("/v1/projects/current", headers={"X-Project": project.slug})
    refused = UsageRecord.objects.filter(personal_token=pat, error_code="ip_not_allowed")
    assert refused.count() == 3
    assert {str(r.ip) for r in refused} == {"203.0.113.9"}
    detect(now=timezone.now() + timedelta(seconds=1))
    assert not Flag.objects.exists()


def test_refusals_raise_a_high_alert_and_not_an_auth_burst(api, api_key, user):
    token_networks_set(api_key[0], networks=["203.0.113.0/24"], by=user)
    outside = from_address(api, "198.51.100.7")
    for _ in range(25):
        assert_error(outside.post(INVOKE, {"prompt": "x"}), 403, "ip_not_allowed")
    detect(now=timezone.now() + timedelta(seconds=1))
    flags = list(Flag.objects.all())
    assert [f.kind for f in flags] == [Flag.Kind.BLOCKED_NETWORK]
    (flag,) = flags
    assert flag.severity == Flag.Severity.HIGH and flag.occurrences == 25
    assert "198.51.100.7" in flag.summary


def test_the_service_refuses_what_the_form_would(api_key, user):
    with pytest.raises(ValidationError):
        token_networks_set(api_key[0], networks=["not a network"], by=user)
    with pytest.raises(ValidationError):
        token_networks_set(api_key[0], networks=[f"10.0.{i}.0/24" for i in range(21)], by=user)
    assert ApiKey.objects.get(pk=api_key[0].pk).allowed_networks == []


# The pages


@pytest.mark.django_db(transaction=True)
def test_a_list_saved_while_another_is_saved_is_compared_with_the_one_that_committed(
    api_key, user, monkeypatch
):
    """The second save read the key before the first committed: compared with that copy,
    it was "as they were" and wrote nothing, leaving the first's list (any network here)
    while its person was told the key was limited as they asked."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is shown on PostgreSQL.")
    key = api_key[0]
    token_networks_set(key, networks=["203.0.113.0/24"], by=user)
    answers = {}

    def save(networks: list[str]) -> None:
        answers[tuple(networks)] = token_networks_set(
            ApiKey.objects.get(pk=key.pk), networks=networks, by=user
        )

    second_failures = the_second_waits_for_the_first(
        monkeypatch,
        networks_service,
        "audit_record",
        lambda: save([]),
        lambda: save(["203.0.113.0/24"]),
    )
    assert second_failures == []
    assert answers == {(): True, ("203.0.113.0/24",): True}
    key.refresh_from_db()
    assert key.allowed_networks == ["203.0.113.0/24"]
    last = AuditEvent.objects.filter(action="api_key.networks_changed").latest("id")
    assert last.metadata == {"from": [], "to": ["203.0.113.0/24"]}


def test_the_usage_page_offers_the_networks_the_key_was_used_from(signed_in, project, api_key, api):
    key = api_key[0]
    for address in ("203.0.113.5", "203.0.113.77", "2001:db8:1:2::9"):
        assert_ok(from_address(api, address).post(INVOKE, {"prompt": "seen"}))
    assert UsageIp.objects.filter(api_key=key).count() == 3
    page = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    form = page.context["networks_form"]
    offered = form.initial["networks"].split("\n")
    assert sorted(offered) == ["2001:db8:1::/48", "203.0.113.0/24"]  # two calls, one network
    assert networks_url(project, key) in page.content.decode()


def test_networks_first_seen_in_the_last_day_are_not_offered_beside_older_ones(
    signed_in, project, api_key
):
    # A leaked key: a week from the customer's servers, then an hour from somewhere new.
    # Saving what the page fills in must not allow the network the leak is used from.
    key = api_key[0]
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(days=6), key=key, ip="10.20.0.11"),
            usage_call(now - timedelta(minutes=50), key=key, ip="10.20.0.12"),
            *(usage_call(now - timedelta(minutes=m), key=key, ip="45.83.64.17") for m in range(40)),
        ]
    )
    page = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    assert page.context["networks_form"].initial["networks"] == "10.20.0.0/24"
    assert "45.83.64.0/24" in page.context["networks_left_out"]
    assert "first seen in the last 24 hours" in page.content.decode()


def test_saving_networks_from_the_page_limits_the_key_and_audits(signed_in, project, api_key):
    key = api_key[0]
    done = signed_in.post(
        networks_url(project, key), {"networks": "203.0.113.9/24\n2001:db8::/48"}, headers=HTMX
    )
    assert done.status_code == 200
    assert "2 networks" in done.content.decode()  # the message, out of band
    key.refresh_from_db()
    assert key.allowed_networks == ["203.0.113.0/24", "2001:db8::/48"]
    event = AuditEvent.objects.get(action="api_key.networks_changed")
    assert event.project == project and event.metadata["to"] == key.allowed_networks
    listed = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug]))
    assert "2 networks only" in listed.content.decode()


@pytest.mark.parametrize(
    "typed", ["nonsense", "1²7.0.0.1", "10.0.0.0/8\x00", "0.0.0.0/0", "::/0", "a\nb\nc"]
)
def test_bad_networks_are_named_beside_the_field_and_nothing_changes(
    signed_in, project, api_key, typed
):
    key = api_key[0]
    refused = signed_in.post(networks_url(project, key), {"networks": typed}, headers=HTMX)
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_networks_error"' in html
    assert ApiKey.objects.get(pk=key.pk).allowed_networks == []
    plain = signed_in.post(networks_url(project, key), {"networks": typed})
    assert plain.status_code == 422 and 'id="id_networks_error"' in plain.content.decode()


def test_the_networks_page_a_plain_form_comes_back_to_is_headed_by_its_key(
    signed_in, project, api_key
):
    """Without JavaScript a refused form comes back as a page of its own: one h1 naming
    what it is about, as every page has (a screen reader's list of headings)."""
    key = api_key[0]
    plain = signed_in.post(networks_url(project, key), {"networks": "nonsense"})
    assert plain.status_code == 422
    headings = re.findall(r"<h1[^>]*>(.*?)</h1>", plain.content.decode(), re.S)
    assert len(headings) == 1 and "Allowed networks" in headings[0] and key.name in headings[0]


def test_another_projects_key_cannot_be_limited(
    signed_in, make_project, make_user, make_key, project
):
    theirs = make_project(make_user(email="them@example.com"), name="Theirs")
    their_key, _ = make_key(theirs, name="Theirs")
    for slug_project in (project, theirs):
        response = signed_in.post(networks_url(slug_project, their_key), {"networks": "10.0.0.0/8"})
        assert response.status_code == 404
    assert ApiKey.objects.get(pk=their_key.pk).allowed_networks == []


def test_a_pat_is_limited_from_its_page_and_only_by_its_owner(signed_in, user, make_user):
    pat, _ = personal_token_create(user=user, name="CLI")
    url = reverse("apikeys:personal_token_networks", args=[pat.pk])
    form = signed_in.get(url, headers=HTMX)
    assert form.status_code == 200 and "CLI" in form.content.decode()
    refused = signed_in.post(url, {"networks": "300.1.1.1"}, headers=HTMX)
    assert refused.status_code == 422 and 'id="id_networks_error"' in refused.content.decode()
    done = signed_in.post(url, {"networks": "198.51.100.0/24"}, headers=HTMX)
    assert done.status_code == 200 and "personalTokensChanged" in done["HX-Trigger"]
    assert PersonalAccessToken.objects.get(pk=pat.pk).allowed_networks == ["198.51.100.0/24"]

    other, _ = personal_token_create(user=make_user(email="them@example.com"), name="Theirs")
    other_url = reverse("apikeys:personal_token_networks", args=[other.pk])
    assert signed_in.post(other_url, {"networks": "10.0.0.0/8"}).status_code == 404
    assert PersonalAccessToken.objects.get(pk=other.pk).allowed_networks == []


def test_a_revoked_keys_page_offers_no_networks_to_allow(signed_in, project, api_key, api):
    """It said "This key works from any network" under a red "revoked" badge, and offered
    to save the networks it was used from: for a key that works from nowhere."""
    key, _ = api_key
    assert api.post(INVOKE, {"prompt": "hi"}).status_code == 200
    usage = reverse("usage:api_key_usage", args=[project.slug, key.pk])
    assert b"Save allowed networks" in signed_in.get(usage).content
    key.revoke(by=None)
    page = signed_in.get(usage).content.decode()
    assert "Save allowed networks" not in page
    assert "This key works from any network" not in page
    assert "It no longer works from any network" in page
