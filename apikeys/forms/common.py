"""What the forms of API keys and personal access tokens share: the name field, the expiry
(TokenExpiryForm) and the name, permissions and agent scope a new one is given
(TokenCreateForm)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django import forms
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ALL_PERMISSIONS, Permission
from apikeys.scopes import CHAT, INVOKE, parse_agent_names
from apikeys.services import (
    LONGEST_LIFETIME,
    OutOfPolicy,
    expiry_checked,
    key_name_normal,
)
from core.forms import NoTokenCharField
from core.token_shape import holds_token_rest
from core.validators import no_secret, single_line, visible

EXPIRY_CHOICES = [
    ("never", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("date", "On a date"),
]


def _parsed_lines(text: str, parse: Callable[[str], tuple[list[str], list[str]]]) -> list[str]:
    """A one-entry-per-line field through its parser (agent names, networks): the entries,
    or every line's problem beside the field."""
    if "\x00" in text:
        raise forms.ValidationError("Null characters are not allowed.")
    entries, problems = parse(text)
    if problems:
        raise forms.ValidationError(problems)
    return entries


class ApiKeyNameField(NoTokenCharField):
    """A key's (or PAT's) name: one line of visible text, kept composed (NFC) as the
    services keep it (apikeys.services.key_name_normal), so that its length, and the check
    that no working key has it, see what will be kept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=100,
            label="Name",
            help_text="What or where the key is used, e.g. “Production” or “CI”.",
            widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Production"}),
            error_messages={"required": "Give the key a name, so you can tell keys apart."},
            validators=[single_line, visible, no_secret],
            **kwargs,
        )

    def to_python(self, value: Any) -> str:
        return key_name_normal(super().to_python(value) or "")

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        return value.strip()


class AgentNamesField(forms.CharField):
    """Agent names, one per line or comma-separated (parse_agent_names). A token's 36
    characters after its prefix have an agent name's shape: refused there, and not shown
    back in the field either (NoSecretBoundField does so for a whole token, and for any
    text past 10,000 characters, which is not read here)."""

    def bound_data(self, data: Any, initial: Any) -> Any:
        if isinstance(data, str) and len(data) <= 10_000 and holds_token_rest(data):
            return ""
        return super().bound_data(data, initial)


class TokenExpiryForm(forms.Form):
    """When a new secret stops working: a choice of days, a date, or never, within the
    lifetime policy that applies. Asked when a key or PAT is made and when a PAT is
    regenerated."""

    expiry_choices = EXPIRY_CHOICES
    max_days: int | None = None
    # What the form's messages call the credential: a PAT's form says "token", as its page.
    noun = "key"

    expiry = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="never")
    expires_on = forms.DateField(
        label="Expiry date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        expiry = self.fields["expiry"]
        assert isinstance(expiry, forms.ChoiceField)
        expiry.choices = self.expiry_choices
        on_a_date = (
            f"With “On a date”: the {self.noun} stops working at the start of this day (UTC)."
        )
        self.fields["expires_on"].help_text = on_a_date
        # The days the picker offers: from tomorrow to the last day the limits allow.
        today = timezone.now().date()
        last = (timezone.now() + LONGEST_LIFETIME).date()
        if self.max_days:
            last = min(last, today + datetime.timedelta(days=self.max_days))
        self.fields["expires_on"].widget.attrs.update(
            min=f"{today + datetime.timedelta(days=1):%Y-%m-%d}", max=f"{last:%Y-%m-%d}"
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("expiry") == "date":
            day = data.get("expires_on")
            if day is None:
                if "expires_on" not in self.errors:
                    self.add_error(
                        "expires_on",
                        forms.ValidationError(
                            f"Pick the date the {self.noun} expires.", code="required"
                        ),
                    )
            elif day <= timezone.now().date():
                self.add_error(
                    "expires_on",
                    forms.ValidationError("Pick a date after today.", code="past"),
                )
            elif self.max_days and day > timezone.now().date() + datetime.timedelta(
                days=self.max_days
            ):
                self.add_error(
                    "expires_on",
                    forms.ValidationError(
                        "Pick a date at most %(days)s days from today.",
                        code="too_far",
                        params={"days": self.max_days},
                    ),
                )
            else:
                try:  # the limit of every expiry, as the API and createapikey apply it
                    expiry_checked(self.expires_at(), now=timezone.now())
                except OutOfPolicy as refused:
                    self.add_error(
                        "expires_on", forms.ValidationError(str(refused), code="too_far")
                    )
        return data

    def lifetime_policy(self) -> tuple[int | None, str]:
        """The most days the new token may live, and whose rule that is (None: no rule)."""
        return None, ""

    def check_policy(self) -> None:
        """The lifetime policy, once every field is valid (call it last in clean())."""
        if self.errors:
            return
        days, whose = self.lifetime_policy()
        if days is None:
            return
        now = timezone.now()
        if Project.lifetime_exceeds(days, now, self.expires_at()):
            self.add_error(
                self.expiry_field(),
                forms.ValidationError(
                    "%(whose)s accepts only tokens that expire within %(days)s days: pick an "
                    "expiry by %(last)s.",
                    code="policy",
                    params={
                        "whose": whose,
                        "days": days,
                        "last": f"{now + datetime.timedelta(days=days):%-d %b %Y}",
                    },
                ),
            )

    def expiry_field(self) -> str:
        """The field an error about the chosen expiry stands beside."""
        return "expires_on" if self.cleaned_data.get("expiry") == "date" else "expiry"

    def expires_at(self) -> datetime.datetime | None:
        expiry = self.cleaned_data["expiry"]
        if expiry == "never":
            return None
        if expiry == "date":
            day = self.cleaned_data["expires_on"]
            return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
        return timezone.now() + datetime.timedelta(days=int(expiry))


class TokenCreateForm(TokenExpiryForm):
    """Name, permissions (full unless restricted) and an optional expiry: what API keys and
    personal access tokens both ask for."""

    field_order = ["name", "access", "permissions", "agents", "agent_use", "expiry", "expires_on"]

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
    agents = AgentNamesField(
        label="Agents it may use",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "autocomplete": "off"}),
        help_text="Agent names, one per line or separated by commas. Leave it empty for every "
        "agent of the project, now and later.",
    )
    agent_use = forms.ChoiceField(
        label="It may",
        choices=[
            ("both", "Invoke and chat with them"),
            (INVOKE, "Only invoke them (agents:invoke)"),
            (CHAT, "Only chat with them (agents:chat)"),
        ],
        initial="both",
        required=False,  # not sent: both, as every key before scopes
        widget=forms.RadioSelect,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("access") == "restricted" and not data.get("permissions"):
            self.add_error(
                "permissions",
                forms.ValidationError(
                    f"Choose at least one permission for a restricted {self.noun}.",
                    code="required",
                ),
            )
        self.check_policy()
        return data

    def clean_agents(self) -> list[str]:
        return _parsed_lines(self.cleaned_data["agents"], parse_agent_names)

    def chosen_agent_actions(self) -> list[str]:
        use = self.cleaned_data.get("agent_use") or "both"
        return [] if use == "both" else [use]

    def chosen_permissions(self) -> list[str]:
        if self.cleaned_data["access"] == "full":
            return list(ALL_PERMISSIONS)
        return list(self.cleaned_data["permissions"])
