"""A token copied from somewhere that adds invisible characters (a chat's zero-width
spaces, a word processor's soft hyphens, a bidi mark) or shows it in fullwidth forms is the
same token to whoever copies it from the page again: it is refused where a token is
refused and cut where a token is cut, as the plain one is."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import Project, User
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import api_key_suspend, personal_token_create
from core.redact import (
    RedactTokens,
    holds_secret,
    redact_secrets,
    redact_tokens,
    redact_tokens_escaped,
)
from core.validators import no_secret, no_secret_in_reason
from tests.conftest import HTMX, PASSWORD

SECRET = "A1b2" * 9
TOKEN = "reminix_sk_" + SECRET


def _every_third(mark: str) -> Callable[[str], str]:
    """`mark` after every third character, prefix and secret alike."""
    return lambda token: "".join(
        char + (mark if n % 3 == 2 else "") for n, char in enumerate(token)
    )


def _fullwidth(token: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) for char in token)


def _bold(token: str) -> str:
    """Mathematical bold letters and digits, as some editors and sites style text."""
    bold = {
        **{chr(ord("A") + n): chr(0x1D400 + n) for n in range(26)},
        **{chr(ord("a") + n): chr(0x1D41A + n) for n in range(26)},
        **{chr(ord("0") + n): chr(0x1D7CE + n) for n in range(10)},
    }
    return "".join(bold.get(char, char) for char in token)


DISGUISES: dict[str, Callable[[str], str]] = {
    "zero-width space": _every_third("\u200b"),
    "word joiner": _every_third("\u2060"),
    "byte-order mark": _every_third("\ufeff"),
    "soft hyphen": _every_third("\u00ad"),
    "left-to-right mark": _every_third("\u200e"),
    "right-to-left mark": _every_third("\u200f"),
    "right-to-left override": lambda token: "\u202e" + token + "\u202c",
    "combining grapheme joiner": _every_third("\u034f"),
    "variation selector": _every_third("\ufe0f"),
    "fullwidth": _fullwidth,
    "fullwidth and zero-width": lambda token: _every_third("\u200b")(_fullwidth(token)),
    "mathematical bold": _bold,
    "one zero-width space after the prefix's first characters": lambda token: (
        token[:14] + "\u200b" + token[14:]
    ),
}
DISGUISED = pytest.mark.parametrize("disguise", DISGUISES.values(), ids=DISGUISES.keys())


def as_read(text: str) -> str:
    """What a reader sees of `text`, as the patterns should: no invisible characters,
    compatibility forms folded."""
    shown = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Mn"))
    return unicodedata.normalize("NFKC", shown)


def assert_cut(text: str) -> None:
    read = as_read(text)
    assert "A1b2" not in read and "A1" not in read.split("[redacted]", 1)[-1], text
    assert "reminix_sk_[redacted]" in text


@DISGUISED
def test_a_disguised_token_is_held_to_be_a_secret(disguise):
    assert holds_secret(f"Production {disguise(TOKEN)}")
    assert holds_secret(disguise("whsec_" + "Q-9_zR" * 7))
    with pytest.raises(ValidationError) as refused:
        no_secret(f"Production {disguise(TOKEN)}")
    assert refused.value.code == "secret"
    with pytest.raises(ValidationError):
        no_secret_in_reason(f"Leaked in #42: {disguise(TOKEN)}")


@DISGUISED
def test_a_disguised_token_is_cut_from_text_that_is_kept(disguise):
    line = f"GET /v1/agents/{disguise(TOKEN)}/invoke HTTP/1.1 café"
    assert_cut(redact_tokens(line))
    assert_cut(redact_secrets(line))
    assert_cut(redact_tokens_escaped(line))
    # As the access log sees it: the invisible characters percent-escaped in UTF-8.
    assert_cut(redact_tokens_escaped(f"/v1/agents/{quote(disguise(TOKEN))}/invoke"))
    # What surrounds it is kept as it was.
    assert redact_tokens(line).startswith("GET /v1/agents/")
    assert redact_tokens(line).endswith("/invoke HTTP/1.1 café")


@DISGUISED
def test_the_log_handlers_cut_a_disguised_token(disguise):
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s',
        (f"GET /v1/agents?key={quote(disguise(TOKEN))} HTTP/1.1", 401), None,
    )  # fmt: skip
    RedactTokens().filter(record)
    assert "A1b2" not in as_read(record.getMessage())
    pasted = logging.LogRecord(
        "api.endpoint", logging.ERROR, __file__, 1, f"pasted {disguise(TOKEN)}", (), None
    )
    RedactTokens().filter(pasted)
    assert_cut(pasted.getMessage())


ORDINARY = [
    "Café au lait",
    "Zoë's “prod” — EU/1 (v2.0) 🚀",
    "👩\u200d💻 team",  # an emoji sequence needs its zero-width joiner
    "Ｐｒｏｄｕｃｔｉｏｎ",
    "שלום\u200f עולם",
    "Prod\u200bEU",
    "ﬁnance ㎉ ½",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_with_such_characters_is_neither_refused_nor_changed(text):
    assert not holds_secret(text)
    no_secret(text)
    assert redact_tokens(text) == text
    assert redact_secrets(text) == text
    assert redact_tokens_escaped(text) == text


@pytest.mark.parametrize(
    "hint", ["ｒｅｍｉｎｉｘ＿ｓｋ＿ＡｂＣｄ…ｗｘｙｚ", "reminix_sk_Ab\u200bCd…wxyz"]
)
def test_a_hint_is_no_secret_however_it_is_written(hint):
    assert not holds_secret(f"Same as {hint}")
    assert redact_secrets(f"Same as {hint}") == f"Same as {hint}"


def test_a_disguised_token_as_a_keys_name_is_refused_and_not_written_back(signed_in, project, user):
    for pasted in (
        DISGUISES["fullwidth"](TOKEN),
        DISGUISES["zero-width space"](TOKEN),
        SPLITS["a space inside the secret"],
    ):
        response = signed_in.post(
            reverse("apikeys:api_key_create", args=[project.slug]),
            {"name": f"prod {pasted}", "access": "full", "expiry": "never", "form_id": "f1"},
            headers=HTMX,
        )
        assert response.status_code == 422
        html = response.content.decode()
        assert "looks like a Reminix token" in html
        assert pasted not in html and TOKEN[18:] not in html
    with pytest.raises(ValidationError, match="looks like a Reminix token"):
        personal_token_create(user=user, name=_fullwidth(TOKEN), permissions=["agents"])
    assert not ApiKey.objects.exists() and not PersonalAccessToken.objects.exists()


@DISGUISED
def test_a_disguised_token_is_refused_in_a_project_and_a_persons_name(project, user, disguise):
    project.name = f"Prod {disguise(TOKEN)}"
    with pytest.raises(ValidationError):
        project.full_clean()
    user.name = f"Ada {disguise(TOKEN)}"
    with pytest.raises(ValidationError):
        user.full_clean()


def test_a_disguised_token_is_refused_as_a_name_at_sign_up(client, db):
    response = client.post(
        reverse("accounts:signup"),
        {
            "name": f"Ada {_fullwidth(TOKEN)}",
            "email": "ada@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    html = response.content.decode()
    assert "looks like a Reminix token" in html and _fullwidth(TOKEN) not in html
    assert not User.objects.exists()
    assert Project.objects.count() == 0


def test_a_disguised_token_is_refused_as_a_suspension_reason(make_key, project, user):
    key, _ = make_key(project)
    with pytest.raises(ValidationError):
        api_key_suspend(api_key=key, by=user, reason=f"Leaked: {_fullwidth(TOKEN)}")
    key.refresh_from_db()
    assert key.suspended_at is None


def test_a_disguised_token_is_refused_in_an_agents_description(api):
    from agents.models import Agent
    from tests.api.assertions import assert_error

    body = {"kind": "echo", "description": f"deploy with {_fullwidth(TOKEN)}"}
    response = api.send("PUT", "/v1/agents/support", body)
    assert_error(response, 400, "invalid_field_value")
    assert not Agent.objects.filter(name="support").exists()


def test_gunicorns_access_log_cuts_a_disguised_token_in_the_path_and_the_user_agent():
    from tests.core.test_redact import _access_line

    hidden = DISGUISES["zero-width space"](TOKEN)
    line = _access_line(
        f"/v1/agents/{quote(hidden)}/invoke",
        headers={"User-Agent": f"bot/1 {DISGUISES['fullwidth'](TOKEN)}"},
    )
    assert "A1b2" not in as_read(line) and "A1b2" not in unquote_all(line)
    assert line.count("[redacted]") >= 2


def unquote_all(text: str) -> str:
    from urllib.parse import unquote

    return as_read(unquote(unquote(text)))


# A token with a space a copy put inside it (a chat's or a document's line wrapping, a
# no-break space): whoever reads it takes the space out, as the filters do
# (core.htmx._holds_token) and a command's error does (redact_secrets_spaced). Split
# before its twelfth character, holds_secret saw no token in either piece.
SPLITS = {
    "a space inside the secret": TOKEN[:18] + " " + TOKEN[18:],
    "a space after the prefix": TOKEN[:11] + " " + TOKEN[11:],
    "no-break spaces every four": " ".join(TOKEN[n : n + 4] for n in range(0, 47, 4)).replace(
        " ", "\u00a0"
    ),
}
SPLIT = pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())


@SPLIT
def test_a_token_split_by_spaces_is_refused_as_a_name_or_reason(split):
    with pytest.raises(ValidationError) as refused:
        no_secret(f"Production {split}")
    assert refused.value.code == "secret"
    with pytest.raises(ValidationError):
        no_secret_in_reason(f"Leaked in #42: {split}")


@pytest.mark.parametrize(
    "text",
    [
        "Production EU",
        "reminix_sk_AbCd…wxyz old",
        "sk 12 34",
        # Words after a bare prefix, where one writes about a token: a suspension's
        # reason, an agent's description.
        "Leaked: the reminix_sk_ key was pasted in our Slack channel",
        "Called with a reminix_ct_ token minted by our Backend",
    ],
)
def test_words_and_hints_with_spaces_are_no_secret(text):
    no_secret(text)
    no_secret_in_reason(text)


def test_any_token_split_by_spaces_reads_as_one():
    """However its random letters and digits fell: the check that tells a spaced token
    from words (a digit, or a capital after a small letter) misses none of a thousand."""
    from apikeys.tokens import TokenKind, token_generate

    for _ in range(1000):
        token = token_generate(TokenKind.API_KEY)
        with pytest.raises(ValidationError):
            no_secret(f"{token[:11]} {token[11:20]} {token[20:]}")


@SPLIT
def test_a_token_split_by_spaces_is_kept_by_no_field_of_the_api(admin, api, project, split):
    from agents.models import Agent
    from apikeys.models import ClientToken
    from tests.api.assertions import assert_error

    key = ApiKey.objects.get(project=project)
    assert_error(admin.post("/v1/api-keys", {"name": f"CI {split}"}), 400, "invalid_field_value")
    suspend = admin.post(f"/v1/api-keys/key_{key.pk}/suspend", {"reason": f"Leaked: {split}"})
    assert_error(suspend, 400, "invalid_field_value")
    deploy = api.send("PUT", "/v1/agents/support", {"description": f"with {split}"})
    assert_error(deploy, 400, "invalid_field_value")
    mint = api.post("/v1/client-tokens", {"context": {"note": f"from {split}"}})
    assert_error(mint, 400, "invalid_field_value")
    key.refresh_from_db()
    assert key.suspended_at is None and ApiKey.objects.filter(project=project).count() == 1
    assert not Agent.objects.filter(name="support").exists()
    assert not ClientToken.objects.exists()


def test_a_tokens_secret_without_its_prefix_is_refused_in_every_name_and_reason(
    api, project, signed_in
):
    """The prefixes are no secret: a name or reason holding a token's 36 characters after
    one (known by their checksum, core.token_shape) sent a working secret out in every
    mail, webhook and page that shows it. A project's name as one example of the names."""
    from agents.models import Agent
    from apikeys.tokens import TokenKind, token_generate
    from tests.api.assertions import assert_error

    rest = token_generate(TokenKind.CLIENT_TOKEN).removeprefix("reminix_ct_")
    for text in (rest, f"prod {rest}", f"x{rest}y"):
        with pytest.raises(ValidationError):
            no_secret(text)
        with pytest.raises(ValidationError):
            no_secret_in_reason(f"Leaked: {text}")
    deploy = api.send("PUT", "/v1/agents/support", {"description": f"with {rest}"})
    assert_error(deploy, 400, "invalid_field_value")
    assert not Agent.objects.filter(name="support").exists()
    renamed = signed_in.post(
        reverse("accounts:project_settings", args=[project.slug]),
        {"name": f"Shop {rest}"},
        headers=HTMX,
    )
    html = renamed.content.decode()
    assert 'id="id_name_error"' in html and "looks like a Reminix token" in html
    assert rest not in html
    project.refresh_from_db()
    assert rest not in project.name
    # A name of that shape that is no token's is a name.
    no_secret("a" * 36)
