"""Token shape, checksum, hint and keyed hash (shared/CONTRACT.md, "Tokens")."""

import hashlib
import hmac
import re
import zlib

import pytest

from api.authentication import identify
from apikeys.models import ApiKey
from apikeys.tokens import BASE62, TokenKind, token_generate, token_hash, token_hint, token_kind

SHAPE = {
    TokenKind.API_KEY: re.compile(r"^reminix_sk_[0-9A-Za-z]{30}[0-9A-Za-z]{6}$"),
    TokenKind.CLIENT_TOKEN: re.compile(r"^reminix_ct_[0-9A-Za-z]{30}[0-9A-Za-z]{6}$"),
    TokenKind.PERSONAL_ACCESS_TOKEN: re.compile(r"^reminix_pat_[0-9A-Za-z]{30}[0-9A-Za-z]{6}$"),
}


def base62_of_crc32(body: str) -> str:
    """The contract's checksum, computed independently of apikeys.tokens."""
    number = zlib.crc32(body.encode())
    digits = ""
    for _ in range(6):
        number, remainder = divmod(number, 62)
        digits = BASE62[remainder] + digits
    return digits


@pytest.mark.parametrize("kind", list(TokenKind))
def test_a_generated_token_has_the_contract_shape_and_a_valid_checksum(kind):
    token = token_generate(kind)
    assert SHAPE[kind].match(token), token
    assert token[-6:] == base62_of_crc32(token[:-6])
    assert token_kind(token) is kind


def test_base62_is_digits_then_upper_then_lower_case():
    # The checksum's digits depend on this order; scanners outside this codebase use it too.
    assert BASE62 == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("position", [len("reminix_sk_"), 20, 40, 46])
def test_a_single_changed_character_fails_the_checksum(position):
    token = token_generate(TokenKind.API_KEY)
    for replacement in BASE62:
        if replacement == token[position]:
            continue
        changed = token[:position] + replacement + token[position + 1 :]
        assert token_kind(changed) is None, changed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "reminix_sk_",
        "reminix_xx_" + "a" * 36,
        "sk_" + "a" * 36,
        "reminix_sk_" + "a" * 35,  # one character short
        "reminix_sk_" + "a" * 37,  # one character long
        "reminix_sk_" + "a" * 29 + "-" + "a" * 6,  # not base62
        "reminix_sk_" + "é" * 36,
    ],
)
def test_malformed_text_is_not_a_token(text):
    assert token_kind(text) is None


@pytest.mark.parametrize("extra", ["a", "A1b2", "é", "\x00"])
def test_a_longer_token_is_not_a_token_even_with_a_valid_checksum(extra):
    # Anyone can compute a CRC32: the length, not the checksum, refuses these.
    body = token_generate(TokenKind.API_KEY)[:-6] + extra
    assert token_kind(body + base62_of_crc32(body)) is None


def test_a_thousand_tokens_are_all_different():
    tokens = {token_generate(TokenKind.API_KEY) for _ in range(1000)}
    assert len(tokens) == 1000
    # And the random part really varies in every position, not just somewhere.
    for position in range(len("reminix_sk_"), len("reminix_sk_") + 30):
        assert len({t[position] for t in tokens}) > 30


def test_the_hint_is_the_prefix_first_four_and_last_four_characters():
    token = token_generate(TokenKind.API_KEY)
    hint = token_hint(token, TokenKind.API_KEY)
    assert hint == f"reminix_sk_{token[11:15]}…{token[-4:]}"
    assert re.fullmatch(r"reminix_sk_[0-9A-Za-z]{4}…[0-9A-Za-z]{4}", hint)


def test_the_stored_hash_is_hmac_sha256_under_token_hash_key(settings, api_key):
    key, token = api_key
    expected = hmac.new(
        settings.TOKEN_HASH_KEY.encode(), token.encode(), hashlib.sha256
    ).hexdigest()
    assert key.token_hash == expected == token_hash(token)
    assert token not in key.token_hash and token not in key.hint
    assert ApiKey.objects.filter(token_hash=expected).count() == 1


def test_the_hash_is_keyed_so_the_plain_sha256_of_the_token_is_not_stored(api_key):
    key, token = api_key
    assert key.token_hash != hashlib.sha256(token.encode()).hexdigest()


def test_changing_token_hash_key_invalidates_every_key(settings, api_key, rf):
    _, token = api_key
    request = rf.get("/v1/projects/current", HTTP_AUTHORIZATION=f"Bearer {token}")
    identified = identify(request)
    assert identified.refusal is None and identified.caller.api_key.pk == api_key[0].pk

    settings.TOKEN_HASH_KEY = "a-rotated-token-hash-key"
    refused = identify(request)
    assert refused.caller is None and refused.refusal.code == "invalid_api_key"


def test_a_new_token_is_its_text_everywhere_but_in_a_repr():
    import json

    token = token_generate(TokenKind.API_KEY)
    text = str(token)
    assert f"{token}" == text and json.dumps({"t": token}) == json.dumps({"t": text})
    assert token == text and hash(token) == hash(text) and token_kind(token) is TokenKind.API_KEY
    # A context, dict or list printed with repr() (a DEBUG log, an error report) hides it.
    for container in (token, [token], {"token": token}, (token,)):
        assert text[11:] not in repr(container)
    assert repr(token) == "<secret reminix_sk_…>"
