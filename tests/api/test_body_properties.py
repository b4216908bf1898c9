"""Property tests (hypothesis) of the API's JSON body reader (api/bodies.py): whatever
bytes arrive, json_body() returns an object or raises the contract's 400, never anything
else; and every JSON value within the contract's limits reads back unchanged."""

from __future__ import annotations

import json
import math

from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from api.bodies import MAX_DEPTH, json_body, strict_json
from api.errors import ApiError

factory = RequestFactory()

# JSON values the contract accepts: finite numbers, 64-bit integers, text without NUL or
# lone surrogates, nested within the limit (hypothesis' recursion stays far below it).
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def reads(body: bytes | str) -> dict | None:
    request = factory.post("/v1/agents/x/invoke", body, content_type="application/json")
    try:
        return json_body(request)
    except ApiError as refused:
        assert refused.status == 400 and refused.code == "invalid_request", refused
        return None


@given(st.binary(max_size=300))
def test_any_bytes_are_an_object_or_a_400(body):
    result = reads(body)
    assert result is None or isinstance(result, dict)


@given(st.text(max_size=300))
def test_any_text_is_an_object_or_a_400(body):
    result = reads(body.encode("utf-8", "surrogatepass"))
    assert result is None or isinstance(result, dict)


@given(json_values)
def test_every_value_within_the_contract_reads_back_unchanged(value):
    assert strict_json(json.dumps(value)) == value


@given(st.dictionaries(text, json_values, max_size=4))
def test_every_object_within_the_contract_is_a_body(value):
    assert reads(json.dumps(value)) == value


@given(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", str(2**63), str(-(2**63) - 1)]))
def test_numbers_outside_the_contract_are_refused_wherever_they_sit(number):
    for body in (f'{{"a": {number}}}', f'{{"a": [1, {{"b": {number}}}]}}'):
        assert reads(body) is None


@given(st.integers(min_value=MAX_DEPTH + 1, max_value=20_000))
def test_nesting_past_the_limit_is_refused_at_any_depth(depth):
    assert reads('{"a": ' + "[" * depth + "]" * depth + "}") is None


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_survive(number):
    value = strict_json(json.dumps({"n": number}))["n"]
    assert value == number and math.isfinite(value)
