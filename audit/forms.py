"""The audit pages' filter form."""

from __future__ import annotations

from typing import Any

from django import forms

from audit.actions import Scope, action_groups_for
from audit.reads import AuditFilters
from core.forms import IpAddressFilterField, PagedFilterForm, RowIdField, UtcDateField

STALE_LINK = "This page link is damaged or out of date. Start again from the newest events."


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
    ip = IpAddressFilterField()
    since = UtcDateField(label="From (UTC)")
    until = UtcDateField(label="To (UTC)")
    before = RowIdField(invalid=STALE_LINK)
    after = RowIdField(invalid=STALE_LINK)

    filter_fields = ("action", "actor", "actor_id", "ip", "since", "until")
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
        """A damaged person filter comes from a link too, with no field on screen."""
        return [*super().cursor_errors, *self.errors.get("actor_id", [])]

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
        )
