"""A PAT's regenerate (a new secret, the old one refused at once) and its usage page,
which only its owner can open."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from apikeys.models import ClientToken, PersonalAccessToken
from apikeys.services import (
    client_token_create,
    personal_token_create,
    personal_token_regenerate,
)
from apikeys.tokens import token_hash
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api, statements_run, usage_call
from usage.writer import usage_write

PAT = re.compile(r"reminix_pat_[0-9A-Za-z]{36}")


def regenerate_url(pat: PersonalAccessToken) -> str:
    return reverse("apikeys:personal_token_regenerate", args=[pat.pk])


def usage_url(pat: PersonalAccessToken) -> str:
    return reverse("usage:personal_token_usage", args=[pat.pk])


@pytest.fixture
def pat(user, project) -> tuple[PersonalAccessToken, str]:
    return personal_token_create(user=user, name="Laptop CLI", expires_at=None)


def test_regenerating_shows_a_new_secret_once_and_the_old_one_is_refused(
    signed_in, user, pat, project
):
    token, old_secret = pat
    api = Api(Client(), old_secret)
    headers = {"X-Project": project.slug}
    assert api.get("/v1/projects/current", headers=headers).status_code == 200
    answer = signed_in.post(regenerate_url(token), {"expiry": "7", "form_id": "r1"})
    assert answer.status_code == 201 and "no-store" in answer["Cache-Control"]
    html = answer.content.decode()
    new_secret = PAT.search(html).group(0)
    assert new_secret != old_secret and "has stopped working" in html
    token.refresh_from_db()
    assert token.token_hash == token_hash(new_secret)
    assert token.name == "Laptop CLI"
    assert abs((token.expires_at - timezone.now()) - timedelta(days=7)) < timedelta(minutes=1)
    refused = api.get("/v1/projects/current", headers=headers)
    assert refused.status_code == 401
    assert api.get("/v1/projects/current", token=new_secret, headers=headers).status_code == 200
    event = AuditEvent.objects.get(action="personal_token.regenerated")
    assert event.actor == user and new_secret not in str(event.metadata)
    assert old_secret not in str(event.metadata)
    # Shown once: the list never shows it again, and a replayed form shows nothing new.
    assert new_secret not in signed_in.get(reverse("apikeys:personal_token_list")).content.decode()
    replay = signed_in.post(regenerate_url(token), {"expiry": "7", "form_id": "r1"})
    assert replay.status_code == 302
    token.refresh_from_db()
    assert token.token_hash == token_hash(new_secret)


def test_client_tokens_minted_with_the_old_secret_end_with_it(signed_in, pat, project):
    token, _ = pat
    minted, _ = client_token_create(project=project, context={}, personal_token=token)
    with statements_run() as statements:
        signed_in.post(regenerate_url(token), {"expiry": "30", "form_id": "r2"})
    # Nothing written per client token (a leaked PAT's holder could mint too many to
    # end in time: the regenerate would time out, every time)...
    assert statements
    assert not [sql for sql in statements if ClientToken._meta.db_table in sql]
    # ...ended on its next use, and so shown, without a write per token (ClientToken.end_reason_at).
    minted = ClientToken.objects.select_related("personal_token").get(pk=minted.pk)
    assert minted.end_reason_at(timezone.now()) == (
        "The personal access token that minted this client token was regenerated."
    )


def test_a_client_token_minted_while_its_pat_is_regenerated_ends_with_the_old_secret(
    signed_in, user, pat, project, monkeypatch
):
    """A mint that authenticated with the old secret, then committed after the regenerate
    had ended that secret's client tokens, escaped it: the API checks, as for a rolled
    key, that the secret which minted a client token is still its PAT's."""
    from api import views

    real_create = views.client_token_create

    def regenerated_meanwhile(**kwargs):
        personal_token_regenerate(personal_token=pat[0], by=user, expires_at=None)
        return real_create(**kwargs)

    monkeypatch.setattr(views, "client_token_create", regenerated_meanwhile)
    minted = assert_ok(
        Api(Client(), pat[1]).post(
            "/v1/client-tokens", {"context": {}}, headers={"X-Project": project.slug}
        ),
        201,
    )
    assert_error(Api(Client(), minted["token"]).get("/client/token"), 401, "expired_api_key")
    # The project's list says so too (one rule for both: ClientToken.end_reason_at).
    listing = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug]))
    assert "minted this client token was regenerated" in listing.content.decode()


def test_an_expired_token_can_be_regenerated_but_a_revoked_one_cannot(signed_in, user, pat):
    """A revoked token is refused with 409, as a roll of a revoked key is on its page and
    over the API: the form was right, the token's state is what stands in the way (it was
    422, the answer to a form with errors in its fields)."""
    token, _ = pat
    PersonalAccessToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    assert (
        signed_in.post(regenerate_url(token), {"expiry": "30", "form_id": "e1"}).status_code == 201
    )
    token.refresh_from_db()
    assert token.expires_at > timezone.now()
    token.revoke(by=user)
    refused = signed_in.post(regenerate_url(token), {"expiry": "30", "form_id": "e2"}, headers=HTMX)
    assert refused.status_code == 409
    assert "Create a new token instead" in refused.content.decode()


def test_the_new_expiry_must_fit_the_strictest_project_policy(signed_in, pat, project):
    token, _ = pat
    project.max_pat_lifetime_days = 30
    project.save()
    answer = signed_in.post(
        regenerate_url(token), {"expiry": "never", "form_id": "p1"}, headers=HTMX
    )
    assert answer.status_code == 422
    assert "accepts only tokens that expire within 30 days" in answer.content.decode()
    for odd in ("²", "99999999999999999999", "\x00", "date"):
        answer = signed_in.post(
            regenerate_url(token), {"expiry": odd, "form_id": "p2", "expires_on": "9999-12-31"}
        )
        assert answer.status_code == 422, odd


def test_another_persons_token_is_not_found(client, make_user, pat):
    token, _ = pat
    other = make_user("mallory@example.com")
    client.force_login(other)
    assert client.get(regenerate_url(token)).status_code == 404
    assert client.post(regenerate_url(token), {"expiry": "30", "form_id": "x"}).status_code == 404
    assert client.get(usage_url(token)).status_code == 404


def test_the_usage_page_lists_the_tokens_calls_in_every_project(
    signed_in, user, pat, project, make_project
):
    token, _ = pat
    other_project = make_project(user, name="Second")
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=5), pat=token, project=project),
            usage_call(
                now - timedelta(minutes=4),
                pat=token,
                project=other_project,
                status=403,
                error_code="insufficient_permissions",
            ),
            usage_call(now - timedelta(days=3), pat=token, project=project),
            usage_call(now - timedelta(days=9), pat=token, project=project),
        ]
    )
    other_pat, _ = personal_token_create(user=user, name="Other", expires_at=None)
    usage_write(
        [
            usage_call(
                now - timedelta(minutes=1),
                pat=other_pat,
                project=project,
                request_id="req_not_this_one",
            )
        ]
    )
    response = signed_in.get(usage_url(token))
    assert response.status_code == 200
    assert len(response.context["page"].rows) == 4
    assert [(t.calls, t.refused) for t in response.context["tallies"]] == [(2, 1), (3, 1)]
    assert {(u.project.name, u.calls) for u in response.context["projects"]} == {
        (project.name, 2),
        ("Second", 1),
    }
    assert "req_not_this_one" not in response.content.decode()
    refused = signed_in.get(usage_url(token), {"outcome": "auth_failure"})
    assert [c.status for c in refused.context["page"].rows] == [403]


def test_the_usage_page_leads_back_to_the_tokens_as_a_keys_usage_page_does(
    signed_in, project, pat, make_key
):
    """A key's usage page leads back with a quiet "← API keys" above its heading; the
    token's had a plain link in the style of body text, "Personal access tokens"."""
    key, _ = make_key(project)
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    key_page = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    assert f'<p class="back-link"><a href="{keys}">← API keys</a></p>' in key_page.content.decode()
    tokens = reverse("apikeys:personal_token_list")
    html = signed_in.get(usage_url(pat[0])).content.decode()
    back = f'<p class="back-link"><a href="{tokens}">← Personal access tokens</a></p>'
    assert back in html and html.index(back) < html.index("<h1")


def test_the_usage_page_answers_odd_filters_with_errors_beside_the_fields(signed_in, pat):
    token, _ = pat
    for params in (
        {"status": "²"},
        {"ip": "1.2.3.4\x00"},
        {"since": "9999-12-31T23:59"},
        {"status": "9" * 5000},
        {"before": "garbage"},
    ):
        answer = signed_in.get(usage_url(token), params)
        assert answer.status_code in (200, 400), params
    bad = signed_in.get(usage_url(token), {"status": "²"})
    assert bad.status_code == 400 and "Enter an HTTP status code" in bad.content.decode()


def test_an_htmx_filter_error_is_shown_beside_its_field(signed_in, pat):
    token, _ = pat
    answer = signed_in.get(usage_url(token), {"status": "²"}, headers=HTMX)
    html = answer.content.decode()
    assert answer.status_code == 200  # htmx swaps it in
    assert 'id="usage-filters"' in html and 'hx-swap-oob="true"' in html
    assert "Enter an HTTP status code" in html


def test_after_leaving_a_project_its_end_users_calls_are_no_longer_shown(
    signed_in, user, pat, make_user, make_project
):
    """A probe: a member's PAT minted a client token in a project; the member left; the
    project's end users kept calling with that client token, and the member, a stranger
    to the project now, saw their addresses and browsers on the PAT's usage page. Their
    own calls there stay theirs to see."""
    token, _ = pat
    theirs = make_project(make_user(email="owner@example.com"), name="Theirs")
    Membership.objects.create(user=user, project=theirs)
    minted, _ = client_token_create(project=theirs, context={}, personal_token=token)
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=5), pat=token, project=theirs, request_id="req_own"),
            usage_call(
                now - timedelta(minutes=4),
                pat=token,
                client_token=minted,
                project=theirs,
                ip="198.51.100.77",
                request_id="req_end_user",
            ),
        ]
    )
    page = signed_in.get(usage_url(token)).content.decode()
    assert "req_own" in page and "req_end_user" in page  # a member sees both

    Membership.objects.filter(user=user, project=theirs).delete()
    response = signed_in.get(usage_url(token))
    page = response.content.decode()
    assert "req_own" in page
    assert "req_end_user" not in page and "198.51.100.77" not in page
    assert [(t.calls, t.refused) for t in response.context["tallies"]] == [(1, 0), (1, 0)]


def test_a_regenerate_form_sent_again_past_its_first_send_changes_nothing(
    signed_in, user, pat, project
):
    """A second send that slipped past the session's memory of the form (a double click,
    another tab) would end at once the secret the first send showed."""
    token, _ = pat
    form = signed_in.get(regenerate_url(token), headers=HTMX)
    replacing = form.context["form"]["replacing"].value()
    assert replacing == token.hint
    fields = {"expiry": "30", "replacing": replacing}
    first = signed_in.post(regenerate_url(token), {**fields, "form_id": "a"}, headers=HTMX)
    assert first.status_code == 201
    shown = PAT.search(first.content.decode()).group(0)
    second = signed_in.post(regenerate_url(token), {**fields, "form_id": "b"}, headers=HTMX)
    assert second.status_code == 409
    assert PAT.search(second.content.decode()) is None
    assert "was just given a new secret" in second.content.decode()
    token.refresh_from_db()
    assert token.token_hash == token_hash(shown)
    assert AuditEvent.objects.filter(action="personal_token.regenerated").count() == 1


def test_the_usage_log_links_each_call_to_its_project_as_a_page_and_through_htmx(
    signed_in, pat, project
):
    """A filter or a pager link (htmx) brings back the log alone: its calls stay links to
    their page in a project the person is still in, as on the whole page."""
    token, _ = pat
    usage_write(
        [usage_call(timezone.now(), pat=token, project=project, request_id="req_" + "a" * 24)]
    )
    call_url = reverse("usage:project_call", args=[project.slug, "req_" + "a" * 24])
    for headers in ({}, HTMX):
        html = signed_in.get(usage_url(token), {"outcome": "ok"}, headers=headers).content.decode()
        assert f'href="{call_url}"' in html, headers


def test_a_project_the_person_left_is_not_named_on_their_tokens_usage_page(
    signed_in, user, pat, make_user, make_project
):
    """Their calls there stay theirs to see, but the project's name is its owners' to
    change: a former member reads its slug, which never changes, as on the tokens list."""
    token, _ = pat
    theirs = make_project(make_user(email="owner@example.com"), name="Theirs")
    Membership.objects.create(user=user, project=theirs)
    usage_write([usage_call(timezone.now(), pat=token, project=theirs, request_id="req_own")])
    Membership.objects.filter(user=user, project=theirs).delete()
    theirs.name = "Codename Falcon"
    theirs.save()
    for headers in ({}, HTMX):
        page = signed_in.get(usage_url(token), headers=headers).content.decode()
        assert (
            "req_own" in page and f'{theirs.slug} <span class="muted small">(you left it)' in page
        )
        assert "Codename Falcon" not in page
