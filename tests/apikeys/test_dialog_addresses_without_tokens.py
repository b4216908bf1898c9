"""A key's or a personal token's dialog opened with a token in its address is opened
again without it.

The contract: a token is never written to a later page. A dialog is a page of its own
(its link works without JavaScript), and a hand-made link to one, `…/revoke/?x=reminix_sk_…`,
kept the token in the address bar, the browser's history and the Referer sent onward,
as the filter pages no longer do (core.htmx.address_without_tokens)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from apikeys.services import personal_token_create
from tests.conftest import HTMX

# One of each kind, as they are shaped (a prefix, 30 random characters, a 6 of checksum).
TOKENS = [
    prefix + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123"
    for prefix in ("reminix_sk_", "reminix_ct_", "reminix_pat_")
]
KEY_DIALOGS = ["api_key_rename", "api_key_revoke", "api_key_roll", "api_key_suspend"]
TOKEN_DIALOGS = [
    "personal_token_rename",
    "personal_token_revoke",
    "personal_token_regenerate",
    "personal_token_networks",
]


@pytest.fixture
def dialogs(project, api_key, user) -> list[str]:
    """The address of every dialog the key pages and the personal token page open by GET,
    and of the personal token page itself (the key list is a filter page already)."""
    key, _ = api_key
    pat, _ = personal_token_create(user=user, name="Laptop CLI")
    return [
        reverse("apikeys:api_key_create", args=[project.slug]),
        *(reverse(f"apikeys:{name}", args=[project.slug, key.pk]) for name in KEY_DIALOGS),
        reverse("apikeys:personal_token_list"),
        reverse("apikeys:personal_token_create"),
        *(reverse(f"apikeys:{name}", args=[pat.pk]) for name in TOKEN_DIALOGS),
    ]


@pytest.mark.parametrize("token", TOKENS, ids=["sk", "ct", "pat"])
def test_a_dialog_opened_with_a_token_in_its_query_is_opened_again_without_it(
    signed_in, dialogs, token
):
    for dialog in dialogs:
        response = signed_in.get(dialog, {"x": token, "keep": "1"})
        assert response.status_code == 303, dialog
        assert response["Location"] == f"{dialog}?keep=1", dialog
        assert signed_in.get(response["Location"]).status_code == 200, dialog
        # Its name, too, and a token copied with a space in it.
        spaced = token[:14] + " " + token[14:]
        response = signed_in.get(f"{dialog}?{token}=1&y={spaced}")
        assert (response.status_code, response["Location"]) == (303, dialog), dialog


def test_to_htmx_a_dialog_asked_with_a_token_is_not_swapped_in_but_opened_without_it(
    signed_in, dialogs
):
    for dialog in dialogs:
        response = signed_in.get(
            dialog, {"x": TOKENS[0]}, headers={**HTMX, "HX-Target": "key-panel"}
        )
        assert response["HX-Redirect"] == dialog, dialog
        assert TOKENS[0][11:] not in response.content.decode(), dialog


def test_signed_out_a_dialog_with_a_token_in_its_query_signs_in_back_to_it_without(client, dialogs):
    for dialog in dialogs:
        response = client.get(dialog, {"x": TOKENS[2]}, follow=True)
        assert TOKENS[2][12:] not in response.content.decode(), dialog
        login, *_ = response.redirect_chain[-1]
        assert parse_qs(urlsplit(login).query)["next"] == [dialog], dialog


def test_a_form_sent_to_a_dialog_whose_address_holds_a_token_is_still_answered(
    signed_in, project, api_key
):
    """A POST is not sent elsewhere: a 303 turns it into a GET and drops what it carried.
    (The dialogs' forms post to their own plain address: none of them carries a query.)"""
    key, _ = api_key
    rename = reverse("apikeys:api_key_rename", args=[project.slug, key.pk])
    response = signed_in.post(f"{rename}?x={TOKENS[0]}", {"name": "Renamed", "notes": ""})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "Renamed"
