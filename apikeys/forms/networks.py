"""Where an API key or a PAT may be used from (AllowedNetworksForm)."""

from __future__ import annotations

from django import forms

from apikeys.forms.common import _parsed_lines
from core.networks import MAX_NETWORKS, parse_networks


class AllowedNetworksForm(forms.Form):
    """Where a key or PAT may be used from: networks or addresses, one per line; empty for
    anywhere. Every line that is not a network is named beside the field."""

    networks = forms.CharField(
        label="Allowed networks",
        required=False,
        max_length=4000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "autocomplete": "off"}),
        help_text=f"IPv4 or IPv6 networks (203.0.113.0/24, 2001:db8::/48) or single addresses, "
        f"one per line, at most {MAX_NETWORKS}. Calls from anywhere else get 403 "
        "ip_not_allowed. Leave it empty to allow any network.",
    )

    def clean_networks(self) -> list[str]:
        return _parsed_lines(self.cleaned_data["networks"], parse_networks)
