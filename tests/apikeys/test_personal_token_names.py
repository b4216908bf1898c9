"""A PAT's name gets the checks a key's name gets, in the services that name it
(apikeys.services.token_name_checked): kept composed (NFC), one line of visible text with
no direction override, of 1 to 100 characters, holding no token. They were only in the
form, so a script or a later page calling the services skipped them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apikeys.models import PersonalAccessToken
from apikeys.services import personal_token_create, personal_token_rename
from apikeys.tokens import TokenKind, token_generate
from audit.models import AuditEvent
from tests.conftest import HTMX

REFUSED = [
    "",
    "   ",
    "CI\nBcc: x@example.com",
    "nul\x00byte",
    "tab\there",
    "line\u2028separator",
    "invoice\u202egpj.exe",
    "isolate\u2066here",
    "Pro\u200bduction",
    "soft\u00adhyphen",
    "bom\ufeff",
    "x" * 101,
    "x" * 10_000,
]


@pytest.mark.parametrize("name", REFUSED)
def test_a_pat_is_not_created_with_a_name_a_key_could_not_have(user, name):
    with pytest.raises(ValidationError):
        personal_token_create(user=user, name=name)
    assert not PersonalAccessToken.objects.exists()
    assert not AuditEvent.objects.filter(action="personal_token.created").exists()


@pytest.mark.parametrize("name", REFUSED)
def test_a_pat_is_not_renamed_to_a_name_a_key_could_not_have(user, name):
    pat, _ = personal_token_create(user=user, name="Laptop CLI")
    with pytest.raises(ValidationError):
        personal_token_rename(personal_token=pat, name=name, by=user)
    assert PersonalAccessToken.objects.get().name == "Laptop CLI"
    assert not AuditEvent.objects.filter(action="personal_token.renamed").exists()


def test_a_pasted_token_is_refused_as_a_pat_name_by_the_services(user):
    secret = token_generate(TokenKind.PERSONAL_ACCESS_TOKEN)
    with pytest.raises(ValidationError, match="looks like a Reminix token"):
        personal_token_create(user=user, name=f"CI {secret}")
    pat, _ = personal_token_create(user=user, name="CI")
    with pytest.raises(ValidationError, match="looks like a Reminix token"):
        personal_token_rename(personal_token=pat, name=secret, by=user)
    assert not PersonalAccessToken.objects.filter(name__contains=secret[:20]).exists()


def test_a_tokens_secret_without_its_prefix_is_refused_as_a_name(user, project, make_key):
    """The 36 characters after a token's prefix are letters and digits, a name's shape: so
    named, a key or PAT sent a working secret out in every mail, webhook and alert that
    names it (the prefix is no secret). Known by their checksum, as in an agent scope."""
    from apikeys.services import api_key_create, api_key_rename

    _, secret = make_key(project, name="Production")
    rest = secret.removeprefix("reminix_sk_")
    for name in (rest, f"CI {rest}", f"{rest}-prod"):
        with pytest.raises(ValidationError, match="looks like a Reminix token"):
            personal_token_create(user=user, name=name)
        with pytest.raises(ValidationError, match="looks like a Reminix token"):
            api_key_create(project=project, name=name, created_by=user)
    pat, _ = personal_token_create(user=user, name="CI")
    key, _ = make_key(project, name="Staging")
    with pytest.raises(ValidationError, match="looks like a Reminix token"):
        personal_token_rename(personal_token=pat, name=rest, by=user)
    with pytest.raises(ValidationError, match="looks like a Reminix token"):
        api_key_rename(api_key=key, name=rest, by=user)
    # A name of that shape that is no token's is a name.
    personal_token_rename(personal_token=pat, name="a" * 36, by=user)
    assert not PersonalAccessToken.objects.filter(name__contains=rest[:20]).exists()


def test_a_tokens_secret_without_its_prefix_is_refused_beside_the_name_and_not_shown(
    signed_in, project, make_key
):
    _, secret = make_key(project, name="Production")
    rest = secret.removeprefix("reminix_sk_")
    url = reverse("apikeys:api_key_create", args=[project.slug])
    data = {"name": rest, "access": "full", "expiry": "never", "agent_use": "both"}
    refused = signed_in.post(url, data, headers=HTMX)
    html = refused.content.decode()
    assert refused.status_code == 422 and 'id="id_name_error"' in html
    assert "looks like a Reminix token" in html and rest not in html


def test_a_pat_name_is_kept_composed_and_trimmed_as_a_key_name(user):
    pat, _ = personal_token_create(user=user, name="  Cafe\u0301 CLI  ")
    assert PersonalAccessToken.objects.get(pk=pat.pk).name == "Café CLI"
    personal_token_rename(personal_token=pat, name="Lapto\u0301p ²", by=user)
    assert PersonalAccessToken.objects.get(pk=pat.pk).name == "Laptóp ²"


def test_right_to_left_names_and_joiners_are_names(user):
    """Only what hides or reverses text is refused: letters that carry their direction,
    the marks they use, and the joiners of emoji sequences stay."""
    for name in ("\u05e9\u05dc\u05d5\u05dd CI", "build \u200f(main)", "👩\u200d💻 laptop"):
        pat, _ = personal_token_create(user=user, name=name)
        assert pat.name == name


def test_a_name_kept_before_the_checks_stays_and_can_be_renamed_away(signed_in, user):
    """No data migration: the old name is shown as it was, and a rename replaces it."""
    pat, _ = personal_token_create(user=user, name="CI")
    PersonalAccessToken.objects.filter(pk=pat.pk).update(name="Pro\u200bduction")
    assert signed_in.get(reverse("apikeys:personal_token_list")).status_code == 200
    response = signed_in.post(
        reverse("apikeys:personal_token_rename", args=[pat.pk]),
        {"name": "Production"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert PersonalAccessToken.objects.get(pk=pat.pk).name == "Production"


@pytest.mark.parametrize("name", REFUSED[2:])
def test_the_rename_page_says_so_beside_the_field_never_a_500(signed_in, user, name):
    pat, _ = personal_token_create(user=user, name="CI")
    response = signed_in.post(
        reverse("apikeys:personal_token_rename", args=[pat.pk]), {"name": name}, headers=HTMX
    )
    assert response.status_code == 422
    assert 'id="id_name_error"' in response.content.decode()
    assert PersonalAccessToken.objects.get(pk=pat.pk).name == "CI"
