"""The form of a person's email preferences: two checkboxes per project they are in."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html

from accounts.models import Membership
from core.text_direction import html_isolated
from notifications.services import Choice, effective_choice


class NotificationPreferencesForm(forms.Form):
    """For each of the person's memberships, whether they get the project's high-severity
    alert emails and its API key expiry reminders. An unticked box is "no"."""

    def __init__(self, data: Any = None, *, memberships: list[Membership]) -> None:
        super().__init__(data)
        self.memberships = memberships
        for membership in memberships:
            now = effective_choice(membership)
            # The label is HTML: the project's name in a <bdi> (core.text_direction).
            name = html_isolated(membership.project.name)
            self.fields[f"alerts_{membership.pk}"] = forms.BooleanField(
                label=format_html("High-severity alerts in {}", name),
                required=False,
                initial=now.alert_emails,
            )
            self.fields[f"expiry_{membership.pk}"] = forms.BooleanField(
                label=format_html("API key expiry reminders in {}", name),
                required=False,
                initial=now.expiry_emails,
            )

    def rows(self) -> list[tuple[Membership, forms.BoundField, forms.BoundField]]:
        return [(m, self[f"alerts_{m.pk}"], self[f"expiry_{m.pk}"]) for m in self.memberships]

    def choices(self) -> dict[int, Choice]:
        data = self.cleaned_data
        return {
            m.pk: Choice(alert_emails=data[f"alerts_{m.pk}"], expiry_emails=data[f"expiry_{m.pk}"])
            for m in self.memberships
        }
