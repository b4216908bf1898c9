"""The client tokens page's filter (`reminix_ct_`): those one key minted, and the pager."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Project
from apikeys.forms.key_choices import ProjectKeyChoiceField
from core.forms import RowIdField


class ClientTokenFilterForm(forms.Form):
    """Narrows the client-token list to those one key minted; `before` is the pager's."""

    key = ProjectKeyChoiceField(label="Minted by", empty_label="Any key")
    before = RowIdField(
        invalid="This page link is damaged or out of date. Start again from the newest tokens."
    )

    def __init__(self, data: Any, *, project: Project) -> None:
        super().__init__(data)
        key_field = self.fields["key"]
        assert isinstance(key_field, ProjectKeyChoiceField)
        key_field.offer(project, chosen=self.data.get("key"))
