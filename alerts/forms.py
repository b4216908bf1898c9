"""The Alerts page's forms: its filter, and the lookup of a token someone found."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Project
from apikeys.forms import ProjectKeyChoiceField
from apikeys.tokens import TokenKind, token_kind


class FlagFilterForm(forms.Form):
    """Narrows the Alerts page to one of the project's keys (revoked ones included)."""

    key = ProjectKeyChoiceField(label="Key", empty_label="All keys")

    def __init__(self, data: Any, *, project: Project) -> None:
        super().__init__(data)
        key_field = self.fields["key"]
        assert isinstance(key_field, ProjectKeyChoiceField)
        key_field.queryset = ProjectKeyChoiceField.keys_of(project)


class TokenLookupForm(forms.Form):
    """A token an owner found somewhere, to learn which of the project's keys it is. Never
    shown back (the field does not render its value), stored or logged."""

    token = forms.CharField(
        label="Token",
        max_length=200,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="An API key (reminix_sk_…) or a client token (reminix_ct_…). It is "
        "compared by its fingerprint and not kept.",
        error_messages={"required": "Paste the token you found."},
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip()
        kind = token_kind(token)
        if kind is None:
            raise forms.ValidationError(
                "That is not a Reminix token, or it was not copied whole (its checksum does "
                "not match)."
            )
        if kind is TokenKind.PERSONAL_ACCESS_TOKEN:
            raise forms.ValidationError(
                "That is a personal access token: it belongs to a person, not to a project. "
                "If it leaked, report it at /v1/credentials/revoke to end it."
            )
        return token
