"""The Alerts page's filter."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Project
from apikeys.forms import ProjectKeyChoiceField


class FlagFilterForm(forms.Form):
    """Narrows the Alerts page to one of the project's keys (revoked ones included)."""

    key = ProjectKeyChoiceField(label="Key", empty_label="All keys")

    def __init__(self, data: Any, *, project: Project) -> None:
        super().__init__(data)
        key_field = self.fields["key"]
        assert isinstance(key_field, ProjectKeyChoiceField)
        key_field.queryset = ProjectKeyChoiceField.keys_of(project)
