"""Sudo mode: minting credentials and changing members or origins ask for the password
(or a code) again when the last check is older than 10 minutes, and then the request goes
on where it was, in a dialog (htmx) or as a page."""

from __future__ import annotations

import re
import time
from html import escape, unescape

import pyotp
import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Project
from apikeys.models import ApiKey, PersonalAccessToken
from audit.models import AuditEvent
from tests.accounts.test_two_factor import enrol
from tests.conftest import HTMX, PASSWORD, Api

CONFIRM = reverse("accounts:sudo_confirm")


def go_stale(client) -> None:
    session = client.session
    session["sudo_at"] = time.time() - 660
    session.save()


@pytest.fixture
def stale(signed_in):
    """The signed-in client, its last check of who it is 11 minutes old."""
    go_stale(signed_in)
    return signed_in


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_a_fresh_sign_in_needs_no_prompt(signed_in, project):
    url = reverse("apikeys:api_key_create", args=[project.slug])
    assert "Confirm it is you" not in signed_in.get(url).content.decode()


def test_opening_create_key_after_ten_minutes_asks_in_the_dialog_then_shows_the_form(
    stale, project
):
    url = reverse("apikeys:api_key_create", args=[project.slug])
    prompt = stale.get(url, headers={**HTMX, "HX-Target": "key-panel"})
    html = prompt.content.decode()
    assert 'id="key-panel"' in html and "Confirm it is you" in html
    fields = hidden(html)
    assert fields["sudo_next"] == url and fields["sudo_method"] == "GET"
    wrong = stale.post(
        CONFIRM, {**fields, "sudo_password": "wrong"}, headers={**HTMX, "HX-Target": "key-panel"}
    )
    assert wrong.status_code == 422 and "That is not right" in wrong.content.decode()
    assert AuditEvent.objects.filter(action="user.sudo_failed").count() == 1
    right = stale.post(
        CONFIRM, {**fields, "sudo_password": PASSWORD}, headers={**HTMX, "HX-Target": "key-panel"}
    )
    assert right.status_code == 200
    assert 'name="name"' in right.content.decode()  # the create form, in the dialog
    assert AuditEvent.objects.filter(action="user.sudo_passed").count() == 1
    # Fresh now: no prompt for the next ten minutes.
    assert "Confirm it is you" not in stale.get(url).content.decode()


def test_a_create_sent_after_ten_minutes_is_carried_through_the_prompt(stale, project):
    url = reverse("apikeys:api_key_create", args=[project.slug])
    form = {"name": "Carried", "access": "full", "expiry": "never", "form_id": "f-carried"}
    prompt = stale.post(url, form, headers={**HTMX, "HX-Target": "key-panel"})
    assert not ApiKey.objects.filter(name="Carried").exists()
    fields = hidden(prompt.content.decode())
    assert fields["name"] == "Carried" and fields["sudo_method"] == "POST"
    assert "csrfmiddlewaretoken" not in {k for k in fields if k != "csrfmiddlewaretoken"}
    done = stale.post(
        CONFIRM, {**fields, "sudo_password": PASSWORD}, headers={**HTMX, "HX-Target": "key-panel"}
    )
    assert done.status_code == 201 and "reminix_sk_" in done.content.decode()
    assert ApiKey.objects.filter(name="Carried").count() == 1


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "dialog"])
def test_a_token_pasted_into_a_form_is_not_written_into_the_prompt(stale, project, make_key, htmx):
    """The prompt carries the form's fields to send them on once confirmed, as hidden
    inputs of its page: a token pasted into one (the secret just shown, into the next
    field) was written there whole, against the contract's "never written to a later
    page" (found by the POST sweep). It is carried as a stand-in of a token's shape, which
    the form refuses beside its field as it refuses the token itself."""
    _, secret = make_key(project, name="Pasted")
    url = reverse("apikeys:api_key_create", args=[project.slug])
    form = {"name": secret, "notes": f"see {secret}", "access": "full", "expiry": "never"}
    headers = {**HTMX, "HX-Target": "key-panel"} if htmx else {}
    prompt = stale.post(url, {**form, "form_id": f"f-{htmx}"}, headers=headers)
    html = prompt.content.decode()
    assert "Confirm it is you" in html
    assert secret[len("reminix_sk_") :][:8] not in html
    done = stale.post(CONFIRM, {**hidden(html), "sudo_password": PASSWORD}, headers=headers)
    assert done.status_code == 422
    page = done.content.decode()
    assert "That looks like a Reminix token" in page
    assert not ApiKey.objects.filter(name__startswith="reminix_").exists()


def test_a_token_split_by_a_space_is_not_written_into_the_prompt(stale, project, make_key):
    """As a whole one: the form refuses a token with a space inside it (no_secret), so the
    prompt's hidden inputs carry it as the stand-in, not as sent."""
    _, secret = make_key(project, name="Pasted")
    split = f"{secret[:18]} {secret[18:]}"
    url = reverse("apikeys:api_key_create", args=[project.slug])
    form = {"name": f"CI {split}", "access": "full", "expiry": "never", "form_id": "f-split"}
    prompt = stale.post(url, form)
    html = prompt.content.decode()
    assert "Confirm it is you" in html
    assert secret[18:26] not in html
    done = stale.post(CONFIRM, {**hidden(html), "sudo_password": PASSWORD})
    assert done.status_code == 422
    assert "That looks like a Reminix token" in done.content.decode()
    assert not ApiKey.objects.filter(name__startswith="CI").exists()


def test_a_token_without_its_prefix_is_not_written_into_the_prompt(stale, project, make_key):
    """As a whole one: the form refuses a token's 36 characters without their prefix
    (no_secret), so the prompt's hidden inputs carry a stand-in with a prefix, which the
    form refuses beside the field as it refuses the rest."""
    _, secret = make_key(project, name="Pasted")
    rest = secret.removeprefix("reminix_sk_")
    url = reverse("apikeys:api_key_create", args=[project.slug])
    form = {"name": f"CI {rest}", "access": "full", "expiry": "never", "form_id": "f-rest"}
    prompt = stale.post(url, form)
    html = prompt.content.decode()
    assert "Confirm it is you" in html
    assert rest[:8] not in html and rest[-8:] not in html
    done = stale.post(CONFIRM, {**hidden(html), "sudo_password": PASSWORD})
    assert done.status_code == 422
    assert "That looks like a Reminix token" in done.content.decode()
    assert not ApiKey.objects.filter(name__startswith="CI").exists()


def test_an_invitation_without_htmx_goes_on_after_the_page_prompt(stale, project):
    url = reverse("accounts:project_invitation_send", args=[project.slug])
    prompt = stale.post(url, {"email": "kai@example.com", "role": "member"})
    assert prompt.status_code == 200 and "Confirm it is you" in prompt.content.decode()
    assert not Invitation.objects.exists()
    fields = hidden(prompt.content.decode())
    done = stale.post(CONFIRM, {**fields, "sudo_password": PASSWORD})
    assert done.status_code in (200, 302)
    assert Invitation.objects.filter(email="kai@example.com").exists()


PROJECT_TABS = '<nav class="tabs" aria-label="Project">'


def test_a_wrong_answer_keeps_the_prompt_in_its_projects_frame(stale, project):
    """The prompt replaced a project's page: after a wrong password it is served from
    /account/confirm/, and still reads as that project's page (its name, its tabs)."""
    url = reverse("accounts:project_invitation_send", args=[project.slug])
    prompt = stale.post(url, {"email": "kai@example.com", "role": "member"})
    assert PROJECT_TABS in prompt.content.decode()
    wrong = stale.post(CONFIRM, {**hidden(prompt.content.decode()), "sudo_password": "wrong"})
    html = wrong.content.decode()
    assert wrong.status_code == 422 and "That is not right" in html
    assert (
        PROJECT_TABS in html
        and f'<span class="menu-label"><bdi>{escape(project.name)}</bdi></span>' in html
    )
    assert hidden(html)["sudo_next"] == url


def test_the_prompts_frame_is_only_ever_a_project_of_ones_own(stale, project, make_user):
    theirs = make_user(email="grace@example.com", name="Grace Hopper")
    their_project = theirs.memberships.get().project
    for next_url in (
        reverse("accounts:project_invitation_send", args=[their_project.slug]),
        "/projects/%00/settings/",
        "/projects/" + "x" * 5000 + "/",
        "//evil.example/projects/" + project.slug + "/",
        "not a path",
    ):
        wrong = stale.post(CONFIRM, {"sudo_next": next_url, "sudo_password": "wrong"})
        html = wrong.content.decode()
        assert wrong.status_code == 422, next_url
        assert PROJECT_TABS not in html and "Grace" not in html, next_url
    # Their own project, once its owners require a second factor they have not set up:
    # its pages show them only the page that says so, not the project's frame.
    Project.objects.filter(pk=project.pk).update(require_two_factor=True)
    own = reverse("accounts:project_invitation_send", args=[project.slug])
    wrong = stale.post(CONFIRM, {"sudo_next": own, "sudo_password": "wrong"})
    assert wrong.status_code == 422 and PROJECT_TABS not in wrong.content.decode()


def test_htmx_outside_a_dialog_gets_the_prompt_as_the_page(stale, project):
    url = reverse("accounts:project_origins", args=[project.slug])
    prompt = stale.post(url, {"origins": "https://app.example.com"}, headers=HTMX)
    assert prompt["HX-Retarget"] == "#main" and "Confirm it is you" in prompt.content.decode()


def cancel_href(html: str) -> str:
    (href,) = re.findall(r'<a class="button" href="([^"]*)" data-dismiss>Cancel</a>', html)
    return href


def test_cancel_goes_back_to_the_page_the_prompt_interrupted(stale, project):
    settings_page = reverse("accounts:project_settings", args=[project.slug])
    policy = reverse("accounts:project_key_policy", args=[project.slug])
    came_from = f"http://testserver{settings_page}?tab=keys"
    prompt = stale.post(policy, {"max_lifetime_days": "30"}, headers={"Referer": came_from})
    html = prompt.content.decode()
    assert "Confirm it is you" in html
    assert cancel_href(html) == f"{settings_page}?tab=keys"
    # A wrong answer shows the prompt again (the browser is now on the prompt's address):
    # Cancel still goes back to where the person was.
    fields = hidden(html)
    wrong = stale.post(
        CONFIRM, {**fields, "sudo_password": "wrong"}, headers={"Referer": "http://testserver/x"}
    )
    assert wrong.status_code == 422 and cancel_href(wrong.content.decode()) == (
        f"{settings_page}?tab=keys"
    )
    # With htmx, the page the person is on is the one htmx names.
    htmx = stale.post(
        policy, {}, headers={**HTMX, "HX-Current-URL": f"http://testserver{settings_page}"}
    )
    assert cancel_href(htmx.content.decode()) == settings_page


def test_cancel_never_leaves_the_site_nor_loops_back_to_the_prompt(stale, project):
    policy = reverse("accounts:project_key_policy", args=[project.slug])
    for referer in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)", ""):
        prompt = stale.post(policy, {}, headers={"Referer": referer} if referer else {})
        assert cancel_href(prompt.content.decode()) == reverse("home"), referer
    # A page that asks on opening: going back to it would only ask again.
    create = reverse("apikeys:api_key_create", args=[project.slug])
    prompt = stale.get(create, headers={"Referer": f"http://testserver{create}"})
    assert cancel_href(prompt.content.decode()) == reverse("home")
    # A forged way back in the prompt's own form is checked like the way forward.
    for forged in ("//evil.example/", "https://evil.example/", "/\x00/"):
        answer = stale.post(CONFIRM, {"sudo_back": forged, "sudo_password": "wrong"})
        assert cancel_href(answer.content.decode()) == reverse("home"), forged


@pytest.mark.parametrize("header", ["Referer", "HX-Current-URL"])
@pytest.mark.parametrize("came_from", ["http://[x", "http://[::1/x", "//["])
def test_a_way_back_that_is_no_url_sends_cancel_home_never_a_500(stale, project, header, came_from):
    """urlsplit raises ValueError on a bracket without its pair: a Referer or an
    HX-Current-URL any client can send made the prompt a 500."""
    policy = reverse("accounts:project_key_policy", args=[project.slug])
    for headers in ({header: came_from}, {**HTMX, header: came_from}):
        prompt = stale.post(policy, {}, headers=headers)
        assert prompt.status_code == 200, headers
        assert cancel_href(prompt.content.decode()) == reverse("home"), headers


def test_every_sensitive_action_asks(stale, project, user, make_key):
    key, _ = make_key(project)
    pat = PersonalAccessToken.objects.create(user=user, name="x", token_hash="h" * 64, hint="h")
    for url in (
        reverse("apikeys:api_key_create", args=[project.slug]),
        reverse("apikeys:api_key_roll", args=[project.slug, key.pk]),
        reverse("apikeys:personal_token_create"),
        reverse("apikeys:personal_token_regenerate", args=[pat.pk]),
        reverse("apikeys:client_tokens_revoke_all", args=[project.slug, key.pk]),
        reverse("accounts:project_origins", args=[project.slug]),
        reverse("accounts:project_invitation_send", args=[project.slug]),
        reverse("accounts:totp_remove"),
        reverse("accounts:totp_setup"),
        reverse("accounts:account_email"),
        reverse("accounts:project_two_factor_policy", args=[project.slug]),
        # Longer-lived keys, or a key found in public left working: weakening it is sudo.
        reverse("accounts:project_key_policy", args=[project.slug]),
        reverse("alerts:alert_rules", args=[project.slug]),
        reverse("webhooks:webhook_create", args=[project.slug]),
        # Members and roles, new recovery codes, and an alert channel silenced: sudo too.
        reverse("accounts:project_member_remove", args=[project.slug, 1]),
        reverse("accounts:project_member_role", args=[project.slug, 1]),
        reverse("accounts:project_transfer", args=[project.slug, 1]),
        reverse("accounts:project_invitation_revoke", args=[project.slug, 1]),
        reverse("accounts:recovery_codes_new"),
        reverse("webhooks:webhook_disable", args=[project.slug, 1]),
        reverse("webhooks:webhook_delete", args=[project.slug, 1]),
    ):
        answer = stale.post(url, {})
        assert "Confirm it is you" in answer.content.decode(), url


def test_a_code_from_the_app_confirms_too(signed_in, project):
    secret, _ = enrol(signed_in)
    go_stale(signed_in)
    url = reverse("apikeys:api_key_create", args=[project.slug])
    fields = {"sudo_next": url, "sudo_method": "GET"}
    code = pyotp.TOTP(secret).at(time.time() + 30)
    assert signed_in.post(CONFIRM, {**fields, "sudo_code": code}).status_code == 200
    assert "Confirm it is you" not in signed_in.get(url).content.decode()


def test_the_prompt_only_goes_on_to_sensitive_pages_of_this_site(stale):
    for next_url in ("//evil.example/x", "https://evil.example/", "/\x00/", "javascript:alert(1)"):
        answer = stale.post(CONFIRM, {"sudo_next": next_url, "sudo_password": PASSWORD})
        assert answer.status_code == 302 and answer["Location"] == reverse("home"), next_url
    # A page that does not ask for sudo is opened, never answered through the prompt.
    audit = reverse("accounts:user_audit")
    answer = stale.post(
        CONFIRM, {"sudo_next": audit, "sudo_method": "POST", "sudo_password": PASSWORD}
    )
    assert answer.status_code == 302 and answer["Location"] == audit


def test_ten_wrong_answers_stop_the_checking(stale):
    for _ in range(10):
        assert stale.post(CONFIRM, {"sudo_password": "nope"}).status_code == 422
    blocked = stale.post(CONFIRM, {"sudo_password": PASSWORD})
    assert blocked.status_code == 429


def test_odd_answers_get_an_error_not_a_500(stale):
    for odd in ("\x00", "x" * 5000, "²", ""):
        answer = stale.post(CONFIRM, {"sudo_password": odd, "sudo_code": odd})
        assert answer.status_code in (422, 429), odd


def test_reading_the_alert_rules_needs_no_fresh_check(stale, project):
    page = stale.get(reverse("alerts:alert_rules", args=[project.slug]))
    assert page.status_code == 200 and "Confirm it is you" not in page.content.decode()


def test_a_password_kept_under_an_older_hasher_keeps_the_session_through_the_prompt(stale, user):
    """Checking the password upgraded a hash kept by an older hasher, which changes what
    every session of the person is checked against: the prompt signed its own session out
    the moment it passed (and the person's other sessions with it). Signing in upgrades
    it instead."""
    from django.contrib.auth.hashers import make_password

    type(user).objects.filter(pk=user.pk).update(
        password=make_password(PASSWORD, hasher="pbkdf2_sha256")
    )
    user.refresh_from_db()
    stale.force_login(user)
    go_stale(stale)
    url = reverse("accounts:account_email")
    passed = stale.post(
        CONFIRM, {"sudo_next": url, "sudo_method": "GET", "sudo_password": PASSWORD}
    )
    assert passed.status_code == 200 and "Confirm it is you" not in passed.content.decode()
    assert stale.get(reverse("accounts:account_sessions")).status_code == 200


def test_loosening_a_network_allowlist_or_resuming_a_suspended_key_asks(
    stale, project, user, make_key
):
    """A key limited to its servers' networks is useless to whoever finds a copy of it,
    and a suspended one to anyone: lifting either is what that finder needs, as widening
    the browser origins is, and is asked for as that is. Nothing changes before the
    prompt is passed."""
    from alerts.detection import detect
    from alerts.models import Flag
    from apikeys.services import api_key_suspend, personal_token_create, token_networks_set

    key, secret = make_key(project, name="Limited")
    token_networks_set(key, networks=["203.0.113.0/24"], by=user)
    Api(Client(REMOTE_ADDR="198.51.100.7"), secret).post("/v1/agents/my-agent/invoke", {})
    detect()
    flag = Flag.objects.get(kind=Flag.Kind.BLOCKED_NETWORK)
    pat, _ = personal_token_create(user=user, name="CLI", permissions=["read"])
    token_networks_set(pat, networks=["203.0.113.0/24"], by=user)
    suspended, _ = make_key(project, name="Suspended")
    api_key_suspend(api_key=suspended, by=user, reason="leaked in a ticket")
    for url, form in (
        (reverse("usage:api_key_networks", args=[project.slug, key.pk]), {"networks": ""}),
        (reverse("alerts:flag_network_ours", args=[project.slug, flag.pk]), {}),
        (reverse("apikeys:personal_token_networks", args=[pat.pk]), {"networks": ""}),
        (reverse("apikeys:api_key_resume", args=[project.slug, suspended.pk]), {}),
    ):
        answer = stale.post(url, form)
        assert "Confirm it is you" in answer.content.decode(), url
    # Looking is not loosening: the PAT's networks page opens without the prompt, as the
    # key's usage page (where its form is) does.
    page = stale.get(reverse("apikeys:personal_token_networks", args=[pat.pk]))
    assert page.status_code == 200 and "Confirm it is you" not in page.content.decode()
    # From the key list, the prompt opens in the dialog the button targets.
    resume = reverse("apikeys:api_key_resume", args=[project.slug, suspended.pk])
    in_dialog = stale.post(resume, headers={**HTMX, "HX-Target": "key-panel"}).content.decode()
    assert 'id="key-panel"' in in_dialog and "Confirm it is you" in in_dialog
    for token in (key, pat):
        token.refresh_from_db()
        assert token.allowed_networks == ["203.0.113.0/24"]
    suspended.refresh_from_db()
    assert suspended.suspended_at is not None
    flag.refresh_from_db()
    assert flag.acknowledged_at is None
    # Passed, the form that was sent goes on.
    url = reverse("usage:api_key_networks", args=[project.slug, key.pk])
    stale.post(
        CONFIRM,
        {"sudo_next": url, "sudo_method": "POST", "sudo_password": PASSWORD, "networks": ""},
    )
    key.refresh_from_db()
    assert key.allowed_networks == []


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain form", "htmx"])
def test_turning_off_ones_alert_emails_asks_then_goes_on_after_the_prompt(
    stale, project, user, headers
):
    """Where a person's alerts are mailed is a security setting as the alert rules are:
    a stolen session could otherwise silence its victim's alerts before using their keys."""
    from notifications.services import effective_choice

    membership = project.memberships.get(user=user)
    url = reverse("notifications:preferences")
    page = stale.get(url)
    assert page.status_code == 200 and "Confirm it is you" not in page.content.decode()
    prompt = stale.post(url, {f"expiry_{membership.pk}": "on"}, headers=headers)
    assert "Confirm it is you" in prompt.content.decode()
    assert effective_choice(membership).alert_emails is True
    fields = hidden(prompt.content.decode())
    assert fields["sudo_method"] == "POST" and "alerts_" + str(membership.pk) not in fields
    done = stale.post(CONFIRM, {**fields, "sudo_password": PASSWORD}, headers=headers)
    assert done.status_code in (200, 302)
    assert effective_choice(project.memberships.get(user=user)).alert_emails is False


def test_a_token_in_the_address_of_a_page_that_asks_is_not_written_into_the_prompt(
    stale, project, api_key
):
    """The prompt keeps the address asked for (a hidden field, to continue to once the
    check passes) and the page the person came from (Cancel): a whole token in either
    was written into the prompt's page, which a token never is (the filter pages send
    the browser on without one, core.htmx.address_without_tokens). Found by the sweep
    of every GET page with odd queries (tests/core/test_get_pages_take_odd_queries.py).
    (Every page now sends the browser to itself without it before it asks,
    core.htmx.address_without_tokens: the account's email page asked at the address as
    given until then. The page it came from may still hold one, as sent.)"""
    secret = api_key[1]
    url = reverse("accounts:account_email")
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    came_from = {"Referer": f"http://testserver{keys}?q={secret}"}
    sent_on = stale.get(url, {"q": secret, "sort": "name"}, headers=came_from)
    assert (sent_on.status_code, sent_on["Location"]) == (303, f"{url}?sort=name")
    prompt = stale.get(sent_on["Location"], headers=came_from)
    html = prompt.content.decode()
    assert "Confirm it is you" in html
    assert secret[12:] not in html
    fields = hidden(html)
    assert fields["sudo_next"] == f"{url}?sort=name"
    assert fields["sudo_back"] == keys
    # Once the check passes, the page asked for, as it would have been answered.
    answer = stale.post(CONFIRM, {**fields, "sudo_password": PASSWORD})
    assert answer.status_code == 200 and 'name="email"' in answer.content.decode()


def test_a_token_sent_in_the_prompts_own_fields_is_not_written_back_after_a_wrong_answer(
    stale, project, api_key
):
    """A wrong answer shows the prompt again with the address to go on to and the way
    back as they were sent (its hidden fields): a whole token in either, which no prompt
    of ours puts there but a hand-made or edited form can, was written back into the page.
    Kept without it, as the first prompt keeps them; a path that is a token is no page."""
    secret = api_key[1]
    create = reverse("apikeys:api_key_create", args=[project.slug])
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    sent = {
        "sudo_next": f"{create}?sort=name&q={secret}",
        "sudo_back": f"{keys}?q={secret}",
        "sudo_method": "GET",
        "sudo_password": "wrong",
    }
    for headers in ({}, HTMX, {**HTMX, "HX-Target": "key-panel"}):
        wrong = stale.post(CONFIRM, sent, headers=headers)
        html = wrong.content.decode()
        assert wrong.status_code == 422 and "That is not right" in html
        assert secret[12:] not in html
        fields = unescaped(hidden(html))
        assert (fields["sudo_next"], fields["sudo_back"]) == (f"{create}?sort=name", keys)
    pasted = stale.post(CONFIRM, {**sent, "sudo_next": f"/{secret}/", "sudo_back": f"/{secret}/"})
    assert pasted.status_code == 422 and secret[12:] not in pasted.content.decode()
    # Answered rightly, the page asked for, without the token (never sent on to it).
    answer = stale.post(CONFIRM, {**sent, "sudo_password": PASSWORD})
    assert answer.status_code == 200 and answer.context["sort"] == "name"
    assert answer.context["q"] == ""


# Past the 2,048 characters (django.utils.http.MAX_URL_LENGTH) that Django checks a `next`
# for being of this site at all: it refused every such address, and the prompt, once
# answered, went home, away from what the person had asked for.
LONG = "x" * 3000


def unescaped(fields: dict[str, str]) -> dict[str, str]:
    return {name: unescape(value) for name, value in fields.items()}


def test_a_page_asked_with_an_address_past_2048_characters_is_answered_once_confirmed(
    stale, project
):
    url = reverse("apikeys:api_key_create", args=[project.slug])
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    asked = f"{url}?sort=name&q={LONG}"
    came_from = f"{keys}?sort=name&q={LONG}"
    prompt = stale.get(asked, headers={"Referer": f"http://testserver{came_from}"})
    fields = unescaped(hidden(prompt.content.decode()))
    assert fields["sudo_next"] == asked
    assert fields["sudo_back"] == came_from
    answer = stale.post(CONFIRM, {**fields, "sudo_password": PASSWORD})
    assert answer.status_code == 200, answer.get("Location")
    assert 'name="name"' in answer.content.decode()
    assert answer.context["sort"] == "name"
    # Answered wrongly, the prompt again keeps both (its Cancel goes back there).
    wrong = stale.post(CONFIRM, {**fields, "sudo_password": "wrong"})
    assert wrong.status_code == 422
    again = unescaped(hidden(wrong.content.decode()))
    assert (again["sudo_next"], again["sudo_back"]) == (asked, came_from)


def test_a_long_address_of_a_page_that_does_not_ask_is_opened_or_else_its_path(stale):
    audit = reverse("accounts:user_audit")
    # Past 2,048 characters, within what Django redirects to: the whole address.
    answer = stale.post(CONFIRM, {"sudo_next": f"{audit}?ip={LONG}", "sudo_password": PASSWORD})
    assert answer.status_code == 302 and answer["Location"] == f"{audit}?ip={LONG}"
    # Past the 16,384 characters Django redirects to: its path, not a 400 and not home.
    longer = f"{audit}?ip={'x' * 17_000}"
    answer = stale.post(CONFIRM, {"sudo_next": longer, "sudo_password": PASSWORD})
    assert answer.status_code == 302 and answer["Location"] == audit


def test_a_long_address_is_still_only_of_this_site(stale):
    for next_url in (f"//evil.example/?q={LONG}", f"/\\evil.example/?q={LONG}", f"/?\x00{LONG}"):
        answer = stale.post(CONFIRM, {"sudo_next": next_url, "sudo_password": PASSWORD})
        assert answer.status_code == 302 and answer["Location"] == reverse("home"), next_url[:20]
