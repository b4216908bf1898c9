"""Forms of API keys (`reminix_sk_`): create, rename (with notes), suspend, roll, and hand
over the keys of people who left; a project's one working key of each name."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms

from accounts.models import Project, User
from apikeys.forms.common import ApiKeyNameField, TokenCreateForm
from apikeys.models import ApiKey
from apikeys.services import (
    ROLL_OVERLAPS,
    SUSPENSION_REASON_MAX,
    key_name_taken,
    too_many_keys_message,
    working_keys_full,
)
from core.forms import NoTokenCharField
from core.text_direction import quoted
from core.validators import no_secret, no_secret_in_reason, single_line


class ApiKeyCreateForm(TokenCreateForm):
    """A new API key for a project, within the project's lifetime policy."""

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        self.project = project
        super().__init__(*args, **kwargs)
        # Right after the name: notes say what the name cannot.
        self.fields["notes"] = _notes_field()
        self.order_fields(["name", "notes"])
        days = project.max_key_lifetime_days
        if days is not None:
            expiry = self.fields["expiry"]
            assert isinstance(expiry, forms.ChoiceField)
            expiry.choices = [
                (value, label)
                for value, label in self.expiry_choices
                if value == "date" or (value.isdigit() and int(value) <= days)
            ]
            expiry.initial = expiry.choices[-2][0] if len(expiry.choices) > 1 else "date"
            expiry.help_text = f"This project's keys expire within {days} days."

    def lifetime_policy(self) -> tuple[int | None, str]:
        return self.project.max_key_lifetime_days, f"Project {quoted(self.project.name)}"

    def clean_name(self) -> str:
        name = _unique_key_name(self.project, self.cleaned_data["name"])
        if working_keys_full(self.project):
            raise forms.ValidationError(too_many_keys_message(), code="too_many")
        return name


class NotesField(NoTokenCharField):
    """A key's notes: shown in the list and kept in the audit trail, so, like its name, they
    hold no token ("where it is stored" invites pasting the secret itself)."""


def _notes_field() -> forms.CharField:
    return NotesField(
        label="Notes",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional. What it is for, where it is stored, whom to ask. Shown in the list.",
        error_messages={"max_length": "Keep notes to 500 characters."},
        validators=[no_secret],
    )


class ApiKeyRenameForm(forms.Form):
    """A key's name and notes."""

    name = ApiKeyNameField()
    notes = _notes_field()

    def __init__(self, *args: Any, api_key: ApiKey, **kwargs: Any) -> None:
        self.api_key = api_key
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        return _unique_key_name(self.api_key.project, self.cleaned_data["name"], self.api_key)


def _unique_key_name(project: Project, name: str, renaming: ApiKey | None = None) -> str:
    """Two working keys with one name differ only by their hint in every list and alert:
    refused, whatever the case (an ended key's name may be used again). The database holds
    the same rule for a request that passes this at the same moment as another."""
    if key_name_taken(project, name, renaming):
        raise key_name_taken_error(name)
    return name


def key_name_taken_error(name: str) -> forms.ValidationError:
    """What the name field says when a working key has the name: found by the form's check,
    or (apikeys.services.KeyNameTaken) by the database when another request took it since."""
    return forms.ValidationError(
        "A working key of this project is already called “%(name)s”: give this one a "
        "name you can tell apart (e.g. where it is used).",
        code="taken",
        params={"name": name},
    )


class ApiKeySuspendForm(forms.Form):
    """Why a key is being suspended: one line, no token in it, since callers read it in every
    401 suspended_api_key answer until the key is resumed."""

    reason = NoTokenCharField(
        max_length=SUSPENSION_REASON_MAX,
        label="Reason",
        help_text="Shown to whoever calls with the key, in the 401 suspended_api_key answer, "
        "and to your team on this page. Do not put secrets here.",
        validators=[single_line, no_secret_in_reason],
        error_messages={"required": "Say why, so that callers and your team know."},
    )


class KeysTransferForm(forms.Form):
    """Whom the keys of people who left are handed to: a current member."""

    to = forms.ModelChoiceField(
        label="Hand them to",
        queryset=User.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": "Choose a current member of the project."},
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        to = self.fields["to"]
        assert isinstance(to, forms.ModelChoiceField)
        to.queryset = User.objects.filter(memberships__project=project).order_by("email")


class ApiKeyRollForm(forms.Form):
    """How long the secret being replaced keeps working, so that whatever uses it can move
    to the new one without an outage."""

    overlap = forms.ChoiceField(
        label="The current secret keeps working",
        choices=[
            ("now", "Not at all: it stops now"),
            ("1h", "For 1 hour"),
            ("24h", "For 24 hours"),
            ("7d", "For 7 days"),
        ],
        initial="24h",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how long the current secret keeps working.",
            "invalid_choice": "Choose one of the periods shown.",
        },
    )

    # The hint of the secret the form was shown for: a second send of the same form finds
    # the key rolled already, and rolls nothing (apikeys.services.RolledMeanwhile).
    replacing = forms.CharField(widget=forms.HiddenInput, required=False, max_length=40)

    def chosen_overlap(self) -> datetime.timedelta:
        return ROLL_OVERLAPS[self.cleaned_data["overlap"]]

    def replacing_hint(self) -> str | None:
        """None from a form sent before it carried the hint: nothing to compare."""
        return self.cleaned_data["replacing"] or None
