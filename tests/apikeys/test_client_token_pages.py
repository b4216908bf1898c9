"""Settings → Client tokens: listing, revoking one, revoking all of a key's."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken, TokenStatus
from apikeys.services import client_token_create
from apikeys.views.client_tokens import effective_status
from audit.models import AuditEvent
from core.templatetags.display import json_summary


def mint(api_key, **context):
    return client_token_create(
        project=api_key.project,
        api_key=api_key,
        context=context or {"userId": "u_1"},
        server_context={"plan": "secret-plan"},
    )


def test_the_list_shows_id_key_context_and_never_the_token_or_server_context(
    signed_in, project, api_key
):
    key, _ = api_key
    client_token, token = mint(key, userId="u_42")
    html = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug])).content.decode()
    assert client_token.public_id in html
    assert key.name in html
    assert "u_42" in html
    assert token not in html
    assert "secret-plan" not in html


def test_a_direction_override_in_a_context_is_shown_escaped_not_obeyed(signed_in, project, api_key):
    """A context is the customer's JSON, often holding what their own users typed. A
    right-to-left override (U+202E) in one of its strings was written into the page as it
    is, and the browser turned the rest of the cell around: {"user": "<RLO>abc", "role":
    "viewer"} read {"user": ","cba {"reweiv" :"elor". Shown as its JSON escape, it reads
    as it is."""
    mint(api_key[0], user="\u202eabc", role="viewer")

    html = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug])).content
    page = html.decode()

    assert "\u202e" not in page
    assert escape('"user": "\\u202eabc"') in page  # (PostgreSQL keeps the keys in its order)


@pytest.mark.parametrize("mark", ["\u200e", "\u200f", "\u061c"])
def test_a_direction_mark_in_a_context_is_shown_escaped_too(signed_in, project, api_key, mark):
    """The left-to-right, right-to-left and Arabic letter marks reverse nothing, but obeyed
    in the cell they move the JSON's quotes and commas around the strings beside them
    ({"user": "abc<RLM>", … showed its quote and comma out of place). Shown as their JSON
    escapes, as the overrides are."""
    mint(api_key[0], user=f"abc{mark}", role="viewer")

    page = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug])).content
    html = page.decode()

    assert mark not in html
    assert escape(f'"user": "abc\\u{ord(mark):04x}"') in html


def test_a_context_cut_to_a_line_does_not_end_in_half_an_escape():
    """A summary cut to its line ended in "\\u20…" when the cut fell inside an escaped
    control: half an escape is neither the text nor its JSON. The cut falls before it."""
    for padding in range(40, 60):
        summary = json_summary({"user": "x" * padding + "\u202e" + "y" * 40})
        assert summary.endswith("…")
        assert len(summary) <= 60
        cut = summary[:-1]
        assert cut.endswith("\\u202e") or "\\u" not in cut[-6:], summary


@pytest.mark.parametrize("character", ["\u202e", '"', "\n", "\\"])
def test_a_context_cut_just_after_an_escapes_backslash_does_not_end_in_it(character):
    """The cut could fall between an escape's backslash and the rest of it: the summary
    ended in a lone "\\" ("…xxx\\…"), half an escape (of a direction control, a quote, a
    line break or a backslash). The cut falls before the backslash; an escaped backslash
    whole before the cut is kept."""
    for padding in range(40, 60):
        summary = json_summary({"user": "x" * padding + character + "y" * 40})
        cut = summary[:-1]
        trailing = len(cut) - len(cut.rstrip("\\"))
        assert trailing % 2 == 0, summary
        assert not re.search(r"(?<!\\)(?:\\\\)*\\u[0-9a-f]{0,3}$", cut), summary
    kept = json_summary({"user": "x" * 47 + "\\" + "y" * 40})
    assert kept.endswith("x\\\\…")


def test_revoking_one_client_token_keeps_its_record(signed_in, project, api_key):
    client_token, _ = mint(api_key[0])
    signed_in.post(
        reverse("apikeys:client_token_revoke", args=[project.slug, client_token.public_id])
    )
    client_token.refresh_from_db()
    assert client_token.revoked_at is not None
    assert AuditEvent.objects.filter(action="client_token.revoked").count() == 1


def test_revoking_a_token_that_expired_while_the_page_was_open_says_it_had_ended(
    signed_in, project, api_key
):
    """Client tokens live an hour: a page left open that long still offers Revoke. Its
    click answered "is revoked" and stamped the token revoked, so the list and the audit
    log told of a revocation by a member where the token had simply expired."""
    client_token, _ = mint(api_key[0])
    ClientToken.objects.filter(pk=client_token.pk).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )

    response = signed_in.post(
        reverse("apikeys:client_token_revoke", args=[project.slug, client_token.public_id]),
        follow=True,
    )

    assert f"Client token {client_token.public_id} had already ended." in response.content.decode()
    client_token.refresh_from_db()
    assert client_token.revoked_at is None
    assert effective_status(client_token)[0] is TokenStatus.EXPIRED
    assert not AuditEvent.objects.filter(action="client_token.revoked").exists()


def test_revoke_all_ends_every_live_token_of_that_key_only(signed_in, project, api_key, make_key):
    key, _ = api_key
    other_key, _ = make_key(project, name="Other")
    mine = [mint(key)[0] for _ in range(3)]
    theirs = mint(other_key)[0]
    signed_in.post(reverse("apikeys:client_tokens_revoke_all", args=[project.slug, key.pk]))
    status = {t.pk: effective_status(t)[0] for t in ClientToken.objects.select_related("api_key")}
    assert [status[t.pk] for t in mine] == [TokenStatus.REVOKED] * 3
    assert status[theirs.pk] is TokenStatus.ACTIVE
    assert AuditEvent.objects.filter(action="client_token.revoked_all_of_key").count() == 1


def test_a_token_whose_key_was_revoked_shows_as_ended(signed_in, project, api_key):
    key, _ = api_key
    mint(key)
    key.revoke(by=None)
    html = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug])).content.decode()
    assert "The API key that minted this client token was revoked" in html


def test_another_projects_client_token_is_404(client, make_user, make_key):
    owner = make_user(email="owner@example.com")
    their_key, _ = make_key(Project.objects.for_user(owner).get())
    their_token, _ = mint(their_key)
    intruder = make_user(email="intruder@example.com")
    mine = Project.objects.for_user(intruder).get()
    client.force_login(intruder)
    url = reverse("apikeys:client_token_revoke", args=[mine.slug, their_token.public_id])
    assert client.post(url).status_code == 404
    listing = client.get(reverse("apikeys:client_token_list", args=[mine.slug]))
    assert their_token.public_id not in listing.content.decode()
    their_token.refresh_from_db()
    assert their_token.revoked_at is None


def test_revoke_all_with_another_projects_real_key_is_404_and_revokes_nothing(
    client, make_user, make_key
):
    owner = make_user(email="owner@example.com")
    their_key, _ = make_key(Project.objects.for_user(owner).get(), name="Theirs")
    their_token, _ = mint(their_key)
    intruder = make_user(email="intruder@example.com")
    mine = Project.objects.for_user(intruder).get()
    client.force_login(intruder)
    for slug in (mine.slug, their_key.project.slug):
        url = reverse("apikeys:client_tokens_revoke_all", args=[slug, their_key.pk])
        assert client.post(url).status_code == 404
    their_token.refresh_from_db()
    assert their_token.revoked_at is None


def test_with_no_tokens_the_page_shows_how_to_mint_one_here(signed_in, project):
    html = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug])).content.decode()
    assert "README" not in html
    assert "/v1/client-tokens" in html and "reminix_sk_..." in html
    assert reverse("api_docs:reference") + "#createClientToken" in html


def test_an_htmx_history_restore_of_the_client_tokens_page_gets_the_whole_page(
    signed_in, project, api_key
):
    """The key filter pushes its address; when htmx's history cache misses it asks for it
    again (HX-Request with HX-History-Restore-Request) and puts the answer in place of
    the whole body, so the answer must be the page, not the table alone."""
    key, _ = api_key
    client_token, _ = mint(key)
    response = signed_in.get(
        reverse("apikeys:client_token_list", args=[project.slug]),
        {"key": key.pk},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="token-table"' in html
    assert client_token.public_id in html


def test_the_list_gives_each_time_with_its_year_as_the_other_lists_do(
    signed_in: Client, project: Project, api_key: tuple[ApiKey, str]
) -> None:
    """It said "6 Dec, 09:15" where every other list of tokens, keys, members and events
    says "6 Dec 2026, 09:15": near the new year a token's created and expiry times read as
    a year apart or not, and a last use last December as this one's."""
    client_token, _ = mint(api_key[0])
    ClientToken.objects.filter(pk=client_token.pk).update(last_used_at=client_token.created_at)
    client_token.refresh_from_db()
    html = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug])).content.decode()
    row = html[html.index(client_token.public_id) :]
    row = row[: row.index("</tr>")]
    created, ends = (
        f"{client_token.created_at:%-d %b %Y, %H:%M}",
        f"{client_token.ends_at:%-d %b %Y, %H:%M}",
    )
    assert f">{created}</time>" in row
    assert f">{ends}</time>" in row
    assert re.search(rf'data-label="Last used \(UTC\)">{re.escape(created)}', row)
