"""A name, notes or reason far past its limit is refused for its length alone, without
the token check: that reads non-ASCII text a character at a time (core.redact), about a
second for a megabyte of CJK, which any signed-in person could spend on every POST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django import forms
from django.core.exceptions import ValidationError

import core.forms
import core.validators
from accounts.forms import ProjectForm
from accounts.views.passkeys import PasskeyNameForm
from apikeys.forms import ApiKeyRenameForm, ApiKeySuspendForm
from apikeys.services import api_key_suspend, token_name_checked

# All different, none ASCII: the text the token check reads slowest.
HUGE = "".join(chr(0x4E00 + i % 20000) for i in range(1_000_000))


@pytest.fixture
def token_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many texts the token check was given, wherever the forms and validators call it."""
    calls: list[int] = []

    def counted(text: str) -> bool:
        calls.append(len(text))
        return False

    monkeypatch.setattr(core.validators, "holds_token", counted)
    monkeypatch.setattr(core.forms, "holds_token", counted)
    yield calls


def test_a_huge_passkey_name_is_refused_for_its_length_without_the_token_check(token_checks):
    form = PasskeyNameForm(data={"name": HUGE})

    assert not form.is_valid()
    assert [error.code for error in form.errors.as_data()["name"]] == ["max_length"]
    assert form["name"].value() == ""  # not written back whole into the page either
    assert token_checks == []


def test_a_huge_key_name_and_notes_are_refused_for_their_length_without_the_token_check(
    api_key, token_checks
):
    form = ApiKeyRenameForm(data={"name": HUGE, "notes": HUGE}, api_key=api_key[0])

    assert not form.is_valid()
    assert {name: [e.code for e in errors] for name, errors in form.errors.as_data().items()} == {
        "name": ["max_length"],
        "notes": ["max_length"],
    }
    str(form["name"]) + str(form["notes"])  # rendered with the errors, as the page does
    assert token_checks == []


def test_a_huge_suspension_reason_is_refused_for_its_length_without_the_token_check(
    token_checks,
):
    form = ApiKeySuspendForm(data={"reason": HUGE})

    assert not form.is_valid()
    assert [error.code for error in form.errors.as_data()["reason"]] == ["max_length"]
    assert token_checks == []


def test_a_huge_project_name_is_refused_for_its_length_without_the_model_token_check(
    user, token_checks
):
    form = ProjectForm(data={"name": HUGE}, owner=user)

    assert not form.is_valid()
    assert [error.code for error in form.errors.as_data()["name"]] == ["max_length"]
    assert token_checks == []


def test_a_text_within_its_limit_is_still_checked_for_a_token(token_checks):
    assert PasskeyNameForm(data={"name": "Work laptop"}).is_valid()
    assert 11 in token_checks


def test_services_check_a_huge_name_or_reason_for_its_length_first(api_key, user, token_checks):
    with pytest.raises(ValidationError) as refused:
        token_name_checked(HUGE)
    assert refused.value.code == "max_length"

    with pytest.raises(ValidationError):
        api_key_suspend(api_key=api_key[0], by=user, reason=HUGE)
    assert token_checks == []
    api_key[0].refresh_from_db()
    assert not api_key[0].suspended_reason


def test_a_refused_forms_page_checks_each_value_sent_for_a_token_once(token_checks):
    """A render reads each field's value and errors several times (the input, its aria
    attributes, its error list); the check of what is shown back (core.forms'
    NoSecretBoundField) ran on each read, about twice a plain render's time for a refused
    form of non-ASCII text."""

    class LimitForm(forms.Form):
        limit = forms.IntegerField()

    typed = "²" * 40  # not digits to Python's int(): refused, and shown back to correct
    form = LimitForm(data={"limit": typed})
    assert not form.is_valid()

    html = str(form)

    assert typed in html and 'aria-invalid="true"' in html
    assert token_checks == [len(typed)]
