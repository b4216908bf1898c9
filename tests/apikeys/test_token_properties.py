"""Property tests (hypothesis) of token parsing: whatever a client sends as a token,
token_kind() answers a kind or None, never an exception, and accepts only what
token_generate() could have made."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apikeys.tokens import (
    BASE62,
    CHECKSUM_LENGTH,
    PREFIXES,
    TokenKind,
    token_generate,
    token_hash,
    token_hint,
    token_kind,
)

kinds = st.sampled_from(list(TokenKind))
prefixes = st.sampled_from(list(PREFIXES.values()))


@given(st.text(max_size=200))
def test_any_text_is_a_kind_or_none(text):
    assert token_kind(text) in (None, *TokenKind)


@given(prefixes, st.text(max_size=60))
def test_any_text_after_a_real_prefix_is_a_kind_or_none(prefix, rest):
    kind = token_kind(prefix + rest)
    assert kind is None or (prefix + rest).isascii()


@given(kinds)
def test_every_generated_token_parses_as_its_kind_and_hashes(kind):
    token = token_generate(kind)
    assert token_kind(token) is kind
    assert len(token_hash(token)) == 64
    assert token_hint(token, kind).startswith(kind.prefix)
    assert repr(token) == f"<secret {kind.prefix}…>"


@given(kinds, st.data())
def test_changing_any_one_character_breaks_the_checksum(kind, data):
    token = token_generate(kind)
    at = data.draw(st.integers(min_value=len(kind.prefix), max_value=len(token) - 1))
    # Drawn as a shift, not filtered against the token: the token is random, and a draw
    # that depends on it replays differently (hypothesis's FlakyStrategyDefinition).
    shift = data.draw(st.integers(min_value=1, max_value=len(BASE62) - 1))
    replacement = BASE62[(BASE62.index(token[at]) + shift) % len(BASE62)]
    changed = token[:at] + replacement + token[at + 1 :]
    # CRC32 catches every single-character change in the body; in the checksum itself
    # any change is a different checksum.
    assert token_kind(changed) is None


@given(kinds, st.text(alphabet=BASE62, min_size=1, max_size=50))
def test_a_token_with_characters_added_or_cut_is_none(kind, extra):
    token = token_generate(kind)
    assert token_kind(token + extra) is None
    assert token_kind(token[: -min(len(extra), len(token) - len(kind.prefix))]) is None
    assert token_kind(token[: len(kind.prefix) + CHECKSUM_LENGTH]) is None
