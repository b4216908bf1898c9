"""The Alerts page's forms: its filter, the lookup of a token someone found, and the
project's alert rules."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from accounts.invitations import TOKEN_PREFIX as INVITATION_PREFIX
from accounts.models import Project
from alerts import rules
from alerts.models import Flag
from alerts.rules import Tunable
from apikeys.forms import ProjectKeyChoiceField
from apikeys.tokens import TokenKind, token_kind


class FlagFilterForm(forms.Form):
    """Narrows the Alerts page to one of the project's keys (revoked ones included)."""

    key = ProjectKeyChoiceField(label="Key", empty_label="All keys")

    def __init__(self, data: Any, *, project: Project) -> None:
        super().__init__(data)
        key_field = self.fields["key"]
        assert isinstance(key_field, ProjectKeyChoiceField)
        key_field.offer(project, chosen=self.data.get("key"))


class TokenLookupForm(forms.Form):
    """A token a member found somewhere, to learn which of the project's keys it is. Never
    shown back (the field does not render its value), stored or logged."""

    token = forms.CharField(
        label="Token",
        max_length=200,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="An API key (reminix_sk_…) or a client token (reminix_ct_…).",
        error_messages={"required": "Paste the token you found."},
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip()
        kind = token_kind(token)
        if kind is None and INVITATION_PREFIX in token:
            raise forms.ValidationError(
                "That is an invitation link’s token: it lets whoever opens the link join a "
                "project, and never calls the API. If it was shared where it should not be, "
                "withdraw the invitation under its project’s Settings → Members."
            )
        if kind is None:
            raise forms.ValidationError(
                "That is not a Reminix token, or it was not copied whole (its checksum does "
                "not match)."
            )
        if kind is TokenKind.PERSONAL_ACCESS_TOKEN:
            raise forms.ValidationError(
                "That is a personal access token: it belongs to a person, not to a project. "
                "If it is yours, revoke it under your account’s Personal access tokens; anyone "
                "else’s ends when it is reported to /v1/credentials/revoke."
            )
        return token


class ThresholdField(forms.Field):
    """A whole number within a tunable's bounds, or empty for its default. Only ASCII
    digits: int() would take "٣", and the review sent "²", "NaN", "1e400", NUL and
    numbers of thousands of digits."""

    widget = forms.TextInput

    def __init__(self, tunable: Tunable) -> None:
        self.tunable = tunable
        bounds = f"Enter a whole number from {tunable.least:,} to {tunable.most:,}"
        super().__init__(
            label=tunable.label,
            required=False,
            help_text=f"{tunable.least:,}–{tunable.most:,} {tunable.unit}. "
            f"Empty: the default, {tunable.default:,}.",
            error_messages={
                "invalid": f"{bounds} ({tunable.unit}), in digits only; or leave it empty "
                f"for the default ({tunable.default:,}).",
                "out_of_range": f"{bounds} ({tunable.unit}); or leave it empty for the "
                f"default ({tunable.default:,}).",
            },
        )
        self.widget.attrs.update(
            {
                "inputmode": "numeric",
                "autocomplete": "off",
                "placeholder": f"{tunable.default} (default)",
                "maxlength": "12",
            }
        )

    def to_python(self, value: Any) -> int | None:
        text = "" if value is None else str(value).strip()
        if not text:
            return None
        if not _DIGITS.fullmatch(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if len(text) > len(str(self.tunable.most)):  # no int() of a thousand digits
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range")
        return int(text)

    def validate(self, value: Any) -> None:
        if value is not None and not self.tunable.least <= value <= self.tunable.most:
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range")


_DIGITS = re.compile(r"[0-9]+", re.ASCII)

KIND_HELP = {
    rules.BURST: "A key refused for missing permissions or access many times in a short "
    "while (its suspension's and allowlist's refusals, and its calls to the Client API, "
    "not counted: they raise alerts of their own). High: owners are emailed.",
    rules.NETWORK: "A key succeeds from a /24 (IPv4) or /48 (IPv6) network it has not used "
    "before, once its learning period after its first call is over. One alert per key "
    "counts them; at 5 new networks it is high: owners are emailed. The same switch and "
    "learning period cover a key calling an agent it has not called before.",
    rules.SPIKE: "A key's calls in an hour reach a multiple of its hourly average over the "
    "last 7 days, and of its average at that hour of the day (a nightly job is no spike), "
    "and a minimum, once it has a day of history.",
    rules.MANY_IPS: "One client token used from this many addresses or more over its life.",
    rules.UNUSED: "An active key with no successful call for longer than this.",
}


class AlertRulesForm(forms.Form):
    """A project's own thresholds for each alert kind that depends on one, and whether it
    is on. Empty numbers are the defaults."""

    def __init__(self, data: Any = None, *, initial: dict[str, Any] | None = None) -> None:
        super().__init__(data, initial=initial)
        for kind in rules.SWITCHABLE:
            self.fields[f"{kind}_on"] = forms.BooleanField(label="On", required=False, initial=True)
        for tunable in rules.TUNABLES:
            self.fields[tunable.name] = ThresholdField(tunable)

    @classmethod
    def initial_of(cls, values: dict[str, int | None], off: list[str]) -> dict[str, Any]:
        return {**values, **{f"{k}_on": k not in off for k in rules.SWITCHABLE}}

    def kinds(self) -> list[dict[str, Any]]:
        """Each kind with its switch and its numbers, in the order the page shows them."""
        return [
            {
                "kind": kind,
                "label": Flag.Kind(kind).label,
                "help": KIND_HELP[kind],
                "switch": self[f"{kind}_on"],
                "numbers": [self[t.name] for t in rules.TUNABLES if t.kind == kind],
            }
            for kind in rules.SWITCHABLE
        ]

    def values(self) -> dict[str, int | None]:
        return {t.name: self.cleaned_data[t.name] for t in rules.TUNABLES}

    def off(self) -> list[str]:
        return [k for k in rules.SWITCHABLE if not self.cleaned_data[f"{k}_on"]]
