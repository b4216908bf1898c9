"""Forms for API keys: validation and the choices a user makes when creating one."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.utils import timezone

from apikeys.models import ALL_PERMISSIONS, Permission

EXPIRY_CHOICES = [
    ("never", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("date", "On a date"),
]


class ApiKeyNameField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=100,
            label="Name",
            help_text="What or where the key is used, e.g. “Production” or “CI”.",
            widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Production"}),
            error_messages={"required": "Give the key a name, so you can tell keys apart."},
            **kwargs,
        )

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        return value.strip()


class ApiKeyCreateForm(forms.Form):
    """Name, permissions (full unless restricted) and an optional expiry."""

    name = ApiKeyNameField()
    access = forms.ChoiceField(
        label="Permissions",
        choices=[("full", "Full access"), ("restricted", "Restricted")],
        initial="full",
        widget=forms.RadioSelect,
    )
    permissions = forms.MultipleChoiceField(
        label="Restricted to",
        choices=Permission.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only used with Restricted.",
    )
    expiry = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="never")
    expires_on = forms.DateField(
        label="Expiry date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="With “On a date”: the key stops working at the start of this day (UTC).",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("access") == "restricted" and not data.get("permissions"):
            self.add_error(
                "permissions",
                forms.ValidationError(
                    "Choose at least one permission for a restricted key.", code="required"
                ),
            )
        if data.get("expiry") == "date":
            day = data.get("expires_on")
            if day is None:
                if "expires_on" not in self.errors:
                    self.add_error(
                        "expires_on",
                        forms.ValidationError("Pick the date the key expires.", code="required"),
                    )
            elif day <= timezone.now().date():
                self.add_error(
                    "expires_on",
                    forms.ValidationError("Pick a date after today.", code="past"),
                )
        return data

    def chosen_permissions(self) -> list[str]:
        if self.cleaned_data["access"] == "full":
            return list(ALL_PERMISSIONS)
        return list(self.cleaned_data["permissions"])

    def expires_at(self) -> datetime.datetime | None:
        expiry = self.cleaned_data["expiry"]
        if expiry == "never":
            return None
        if expiry == "date":
            day = self.cleaned_data["expires_on"]
            return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
        return timezone.now() + datetime.timedelta(days=int(expiry))


class ApiKeyRenameForm(forms.Form):
    name = ApiKeyNameField()
