"""The audit pages' filter form."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from audit.actions import Scope, action_groups_for
from audit.reads import AuditFilters
from core.forms import IpAddressFilterField, PagedFilterForm, RowIdField, UtcDateField, row_id

STALE_LINK = "This page link is damaged or out of date. Start again from the newest events."

# What a target filter can name: the three kinds of token, as audit_record keeps their
# type (the model's name). Audit sits below apikeys, so the names are said here.
TARGET_KINDS = {
    "apikey": "API key",
    "clienttoken": "client token",
    "personalaccesstoken": "personal access token",
}
_TARGET = re.compile(r"([a-z]{1,32}):([0-9]{1,19})")


class TargetField(forms.CharField):
    """One key or token, from a link (`apikey:42`): its kind and row id, or the stale-link
    message. ASCII digits within the bigint range only ("²" and "٣" are digits to int())."""

    def __init__(self) -> None:
        super().__init__(required=False, widget=forms.HiddenInput)

    def to_python(self, value: Any) -> tuple[str, int] | None:  # type: ignore[override]
        text = value if isinstance(value, str) else ""
        if not text:
            return None
        found = _TARGET.fullmatch(text)
        pk = row_id(found.group(2)) if found else None
        if found is None or pk is None or found.group(1) not in TARGET_KINDS:
            raise forms.ValidationError(STALE_LINK, code="invalid")
        return found.group(1), pk

    def validate(self, value: Any) -> None:
        pass

    def run_validators(self, value: Any) -> None:
        pass


class AuditFilterForm(PagedFilterForm):
    """Narrows an audit log. Every field is optional; an empty form shows every event.

    The project page filters by who acted; on a user's own page that is always them, so
    the field is left out there. Also reads the pager's cursor (`before` or `after`).
    """

    action = forms.ChoiceField(
        label="Action",
        required=False,
        error_messages={"invalid_choice": "Choose a kind of action from the list."},
    )
    actor = forms.CharField(
        label="Actor email",
        required=False,
        max_length=254,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "ada@example.com",
                "autocomplete": "off",
                "spellcheck": "false",
            }
        ),
        error_messages={"max_length": "An email address is at most 254 characters."},
    )
    # The actor column's "only events by" link: one person, whatever address they had.
    actor_id = RowIdField(invalid=STALE_LINK)
    # A key's or token's page links "everything that happened to it".
    target = TargetField()
    ip = IpAddressFilterField()
    since = UtcDateField(label="From (UTC)")
    until = UtcDateField(label="To (UTC)")
    before = RowIdField(invalid=STALE_LINK)
    after = RowIdField(invalid=STALE_LINK)

    filter_fields = ("action", "actor", "actor_id", "target", "ip", "since", "until")
    error_messages = {
        "empty_range": "“To” must be on or after “From”.",
        "two_cursors": "This page link is damaged. Start again from the newest events.",
    }

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope = scope
        action = self.fields["action"]
        assert isinstance(action, forms.ChoiceField)
        action.choices = [
            ("", "Any action"),
            *((group.key, group.label) for group in action_groups_for(scope)),
        ]
        if scope == "user":
            del self.fields["actor"]
            del self.fields["actor_id"]

    @property
    def cursor_errors(self) -> list[str]:
        """A damaged person or target filter comes from a link too, with no field on
        screen."""
        return [
            *super().cursor_errors,
            *self.errors.get("actor_id", []),
            *self.errors.get("target", []),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error(
                "until",
                forms.ValidationError(self.error_messages["empty_range"], code="empty_range"),
            )
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            group=data["action"],
            actor=data.get("actor", "").strip(),
            actor_id=data.get("actor_id"),
            ip=data["ip"],
            since=data["since"],
            until=data["until"],
            target=data.get("target"),
        )
