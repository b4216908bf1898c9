"""The form that adds a webhook endpoint."""

from __future__ import annotations

from typing import Any

from django import forms

from webhooks.addresses import MAX_URL_LENGTH, new_url_problem
from webhooks.models import WebhookEndpoint


class WebhookUrlField(forms.CharField):
    """A new webhook address: https, on HTTPS's port (addresses.new_url_problem), with its
    errors by code."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Endpoint URL")
        kwargs.setdefault("error_messages", {"required": "Enter the address to send alerts to."})
        kwargs.setdefault(
            "widget",
            forms.URLInput(
                attrs={
                    "autocomplete": "off",
                    "spellcheck": "false",
                    "inputmode": "url",
                    "placeholder": "https://example.com/hooks/reminix",
                }
            ),
        )
        # No max_length of CharField's: the over-long address gets url_problem's message.
        super().__init__(max_length=None, **kwargs)
        self.widget.attrs["maxlength"] = str(MAX_URL_LENGTH)
        # Not CharField's own NUL check: url_problem says the same about addresses.
        self.validators = []

    def clean(self, value: Any) -> str:
        url = str(super().clean(value))
        problem = new_url_problem(url)
        if problem is not None:
            code, message = problem
            raise forms.ValidationError(message, code=code)
        return url


class WebhookCreateForm(forms.Form):
    """Where to send a project's alerts, in which format, and from which severity."""

    url = WebhookUrlField(
        help_text="Your HTTPS endpoint (on port 443 or 8443), or a Slack incoming-webhook "
        "URL. Only its host is shown once saved."
    )
    format = forms.ChoiceField(
        label="Format", choices=WebhookEndpoint.Format.choices, widget=forms.RadioSelect
    )
    min_severity = forms.ChoiceField(
        label="Send",
        choices=WebhookEndpoint.MinSeverity.choices,
        initial=WebhookEndpoint.MinSeverity.LOW,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["format"].initial = WebhookEndpoint.Format.GENERIC
