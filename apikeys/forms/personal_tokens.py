"""Forms of personal access tokens (`reminix_pat_`): create, rename, regenerate."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Project, User
from apikeys.forms.common import ApiKeyNameField, TokenCreateForm, TokenExpiryForm
from apikeys.models import PatPermission, PersonalAccessToken
from apikeys.services import too_many_pats_message, working_pats_full
from core.forms import RowChoicesField
from core.text_direction import quoted


class PersonalTokenRenameForm(forms.Form):
    """A personal access token's name."""

    name = ApiKeyNameField()


PAT_EXPIRY_CHOICES = [
    ("7", "7 days"),
    ("30", "30 days"),
    ("60", "60 days"),
    ("90", "90 days"),
    ("date", "On a date (within a year)"),
    ("never", "No expiry (not recommended)"),
]


class PersonalTokenCreateForm(TokenCreateForm):
    """A new personal access token: as a key, plus an optional list of the user's projects."""

    expiry_choices = PAT_EXPIRY_CHOICES
    max_days = 366
    noun = "token"

    manage_keys = forms.BooleanField(
        label="Also manage API keys (keys)",
        required=False,
        help_text="Lets scripts list, create, roll, suspend and revoke the API keys of the "
        "projects it reaches, through /v1/api-keys. Never part of full access: tick it only "
        "for automation that rotates keys.",
    )
    reach = forms.ChoiceField(
        label="Projects it reaches",
        choices=[
            ("chosen", "Only the projects I tick"),
            ("all", "Every project I am a member of, now and later"),
        ],
        initial="chosen",
        widget=forms.RadioSelect,
        error_messages={"required": "Choose which projects the token reaches."},
    )
    projects = RowChoicesField(
        label="Projects",
        queryset=Project.objects.none(),
        required=False,
        error_messages={
            "invalid_choice": "Tick projects from the list: ones you are a member of.",
            "invalid_pk_value": "Tick projects from the list: ones you are a member of.",
        },
        widget=forms.CheckboxSelectMultiple,
        help_text="With “Only the projects I tick”.",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["expiry"].initial = "30"
        # Least privilege, as GitHub's fine-grained tokens: a new token starts with no
        # permission and no project, and asks for each.
        self.fields["access"].initial = "restricted"
        self.fields["name"].help_text = "What the token is for, e.g. “Laptop CLI” or “CI deploys”."
        self.fields["name"].error_messages["required"] = (
            "Give the token a name, so you can tell your tokens apart."
        )
        self.fields["name"].widget.attrs["placeholder"] = "Laptop CLI"
        self.fields["agents"].help_text = (
            "Agent names, one per line or separated by commas. Leave it empty for every agent "
            "of the projects it reaches, now and later."
        )
        projects = self.fields["projects"]
        assert isinstance(projects, RowChoicesField)
        projects.queryset = Project.objects.for_user(user).order_by("name")
        self.fields[
            "expiry"
        ].help_text = (
            "A token with no expiry works until you revoke it. Prefer an expiry and renew it."
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("reach") == "all":
            data["projects"] = []  # every project, now and later, whatever was ticked
        elif (
            data.get("reach") == "chosen"
            and "projects" not in self.errors
            and not data.get("projects")
        ):
            self.add_error(
                "projects",
                forms.ValidationError(
                    "Tick at least one project, or choose every project.", code="required"
                ),
            )
        return data

    def clean_name(self) -> str:
        if working_pats_full(self.user):
            raise forms.ValidationError(too_many_pats_message(), code="too_many")
        name: str = self.cleaned_data["name"]
        return name

    def chosen_permissions(self) -> list[str]:
        chosen = super().chosen_permissions()
        if self.cleaned_data.get("manage_keys"):
            chosen.append(PatPermission.KEYS.value)
        return chosen

    def lifetime_policy(self) -> tuple[int | None, str]:
        """The strictest policy among the projects the token would reach."""
        projects = self.cleaned_data.get("projects") or self.fields["projects"].queryset  # type: ignore[attr-defined]
        strictest = (
            projects.exclude(max_pat_lifetime_days=None).order_by("max_pat_lifetime_days").first()
        )
        if strictest is None:
            return None, ""
        return strictest.max_pat_lifetime_days, f"Project {quoted(strictest.name)}"


class PersonalTokenRegenerateForm(TokenExpiryForm):
    """A new secret for a PAT, as GitHub's "Regenerate token": only its expiry is asked
    again; its name, permissions, projects and networks stay."""

    expiry_choices = PAT_EXPIRY_CHOICES
    max_days = 366
    noun = "token"
    # As ApiKeyRollForm's: the secret this form was shown for.
    replacing = forms.CharField(widget=forms.HiddenInput, required=False, max_length=40)

    def __init__(self, *args: Any, personal_token: PersonalAccessToken, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.personal_token = personal_token
        self.fields["replacing"].initial = personal_token.hint
        expiry = self.fields["expiry"]
        expiry.initial = "30"
        expiry.help_text = "The new secret's lifetime, from now. The old one stops at once."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self.check_policy()
        return data

    def lifetime_policy(self) -> tuple[int | None, str]:
        """The strictest policy among the projects the token reaches."""
        strictest = (
            self.personal_token.reachable_projects()
            .exclude(max_pat_lifetime_days=None)
            .order_by("max_pat_lifetime_days")
            .first()
        )
        if strictest is None:
            return None, ""
        return strictest.max_pat_lifetime_days, f"Project {quoted(strictest.name)}"

    def replacing_hint(self) -> str | None:
        """None from a form sent before it carried the hint: nothing to compare."""
        return self.cleaned_data["replacing"] or None
