"""Members paste a token they found on the Alerts page to learn which key it is (issue 11,
point 7): never stored, logged or shown back; another project's token is not found."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from apikeys.services import api_key_revoke, api_key_roll, personal_token_create
from apikeys.tokens import TokenKind, token_generate
from audit.models import AuditEvent
from tests.api.assertions import assert_ok
from tests.conftest import HTMX


def lookup(client, project, token, **kwargs):
    return client.post(
        reverse("alerts:token_lookup", args=[project.slug]), {"token": token}, **kwargs
    )


def test_a_pasted_key_is_named_with_a_link_to_its_usage_and_never_shown_back(
    signed_in, project, api_key, caplog
):
    key, token = api_key
    caplog.set_level(logging.DEBUG)
    events = AuditEvent.objects.count()
    response = lookup(signed_in, project, token, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert f"the API key “<bdi>{key.name}</bdi>”" in html
    assert key.hint in html and "still works" in html
    assert reverse("usage:api_key_usage", args=[project.slug, key.pk]) in html
    assert token not in html and token not in caplog.text
    assert AuditEvent.objects.count() == events  # nothing stored


def test_a_revoked_key_an_old_secret_and_a_client_token_say_what_they_are(
    signed_in, project, api_key, api, user
):
    key, old = api_key
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    api_key_roll(api_key=key, by=user, overlap=timedelta(0))
    html = lookup(signed_in, project, old).content.decode()
    assert "the old secret of the API key" in html and "stopped" in html
    html = lookup(signed_in, project, minted["token"]).content.decode()
    assert minted["id"] in html and "stopped" in html  # it died with the old secret
    api_key_revoke(api_key=key, by=user)
    assert "revoked" in lookup(signed_in, project, old).content.decode()


def test_another_projects_key_and_a_made_up_one_are_not_found(
    signed_in, project, make_project, make_user, make_key
):
    theirs = make_project(make_user(email="them@example.com"), name="Theirs")
    _, their_token = make_key(theirs, name="Theirs")
    for token in (their_token, token_generate(TokenKind.API_KEY)):
        html = lookup(signed_in, project, token).content.decode()
        assert "No key or client token of this project has that secret" in html
        assert "Theirs" not in html


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "Paste the token"),
        ("reminix_sk_nope", "not a Reminix token"),
        ("x" * 201, "at most 200"),
        ("reminix_sk_\x00", "Null characters"),
    ],
)
def test_odd_input_is_an_error_beside_the_field(signed_in, project, token, says):
    response = lookup(signed_in, project, token, headers=HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="id_token_error"' in html and says in html


def test_a_pat_is_pointed_elsewhere(signed_in, project, user):
    _, secret = personal_token_create(user=user, name="CLI")
    html = lookup(signed_in, project, secret).content.decode()
    assert "personal access token" in html and secret not in html
    # Whose it is, the page cannot say (it is not the project's); the owner, if it is
    # theirs, ends it where their tokens are, not by calling the API.
    assert "If it is yours, revoke it under your account’s Personal access tokens" in html


def test_a_plain_member_may_look_up_a_token_they_found(project, make_user, api_key):
    """A member may revoke, roll and suspend keys and sees every key's name and hint, so
    naming the key of a token they hold tells them nothing they could not act on already;
    owner-only, the member on call holding a leaked string had to find an owner first."""
    key, secret = api_key
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client = Client()
    client.force_login(member)
    page = client.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert 'id="token-lookup"' in page
    answer = lookup(client, project, secret)
    html = answer.content.decode()
    assert answer.status_code == 200 and key.name in html and secret not in html
    assert reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]) in html


def test_the_key_filter_sits_above_the_alerts_it_filters_and_the_lookup_below(signed_in, project):
    """The "Found a token?" card stood between the Key filter and the list it filters, so
    the filter read as part of the lookup; and its field lacked the label style (and said
    twice that the token is compared by its fingerprint)."""
    page = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    where = [page.index(mark) for mark in ('class="filters"', 'id="flags"', 'id="token-lookup"')]
    assert where == sorted(where)
    lookup_card = page[page.index('id="token-lookup"') :]
    assert '<div class="field">' in lookup_card[: lookup_card.index("</form>")]
    assert lookup_card.count("fingerprint") == 1


def test_a_pasted_expired_key_is_offered_its_usage_but_no_roll_or_revoke(
    signed_in, project, api_key
):
    """As on the alerts above it (and the ended keys' table): rolling an expired key is
    refused with 409, so its button only led to a form that fails, and revoking it stops
    nothing its expiry has not. Its usage shows what it was used for."""
    from django.utils import timezone

    from apikeys.models import ApiKey

    key, token = api_key
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(days=1))
    html = lookup(signed_in, project, token, headers=HTMX).content.decode()
    assert "expired" in html
    assert reverse("apikeys:api_key_roll", args=[project.slug, key.pk]) not in html
    assert reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]) not in html
    assert reverse("usage:api_key_usage", args=[project.slug, key.pk]) in html


def test_an_invitation_links_token_is_named_as_one(signed_in, project):
    """The invitation link's token is ours too (`reminix_inv_`), and what a member finds
    pasted in a ticket: "not a Reminix token" sent them looking for a key it never was."""
    token = "reminix_inv_" + "a1B2c3D4e5" * 4
    for pasted in (token, f"https://dashboard.example.com/invitations/{token}/"):
        response = lookup(signed_in, project, pasted, headers=HTMX)
        assert response.status_code == 422
        html = response.content.decode()
        assert "invitation link" in html and "not a Reminix token" not in html
        assert token not in html
