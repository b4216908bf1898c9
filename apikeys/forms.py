"""Forms for API keys: validation and the choices a user makes when creating one."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

from django import forms
from django.db.models import Q
from django.db.models.functions import Coalesce, Greatest
from django.forms.models import ModelChoiceIterator
from django.utils import timezone

from accounts.models import Project, User
from apikeys.models import (
    ALL_PERMISSIONS,
    ApiKey,
    ApiKeyQuerySet,
    PatPermission,
    Permission,
    PersonalAccessToken,
    TokenStatus,
)
from apikeys.scopes import CHAT, INVOKE, parse_agent_names
from apikeys.services import (
    LONGEST_LIFETIME,
    ROLL_OVERLAPS,
    SUSPENSION_REASON_MAX,
    OutOfPolicy,
    expiry_checked,
    key_name_normal,
    key_name_taken,
    too_many_keys_message,
    too_many_pats_message,
    working_keys_full,
    working_pats_full,
)
from core.forms import NoTokenCharField, RowChoicesField, RowIdField, row_id
from core.networks import MAX_NETWORKS, parse_networks
from core.validators import no_secret, no_secret_in_reason, single_line, visible

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


# The ended keys a key filter lists: those that ended, or were last tried, within the
# widest range the usage pages show (the overview's 92 days; the log keeps 90 by default),
# so every key with a call the pages can show is there, and at most ENDED_KEYS_LISTED of
# them, the latest first: a project that rotates keys daily, or hourly, keeps every ended
# one for ever, and the select is sent again with every filter click. An older key comes
# from a link (an old alert, the audit log), and is listed when it is the one chosen.
ENDED_KEYS_RECENT = datetime.timedelta(days=92)
ENDED_KEYS_LISTED = 100
ENDED_GROUP = "Ended"


class ProjectKeyChoiceIterator(ModelChoiceIterator):
    """The keys a filter offers: the working ones (active or suspended), then the ended
    ones of late in their own group, and the chosen key whatever its age."""

    field: ProjectKeyChoiceField

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        working, ended = self.field.listed_keys()
        yield from (self.choice(key) for key in working)
        if ended:
            yield (ENDED_GROUP, [self.choice(key) for key in ended])

    def __len__(self) -> int:
        working, ended = self.field.listed_keys()
        return len(working) + (1 if ended else 0) + (self.field.empty_label is not None)

    def __bool__(self) -> bool:
        return True


class ProjectKeyChoiceField(forms.ModelChoiceField):
    """One of the project's keys, revoked and expired ones included, from a filter's
    `?key=<id>`. Anything but an id within range is "not a choice", asked of no database:
    "²" or an id past the bigint range would otherwise fail inside the query.

    It takes any key of the project (`offer`), but lists only those a person picks from
    (ProjectKeyChoiceIterator): the project's whole history would be thousands."""

    iterator = ProjectKeyChoiceIterator
    default_error_messages = {
        "invalid_choice": "Choose one of this project’s keys from the list.",
    }

    def __init__(self, *, label: str, empty_label: str, **kwargs: Any) -> None:
        self.chosen_id: int | None = None
        super().__init__(
            queryset=ApiKey.objects.none(),
            required=False,
            label=label,
            empty_label=empty_label,
            **kwargs,
        )

    def offer(self, project: Project, *, chosen: Any) -> None:
        """Take any key of `project`; list its working and lately ended keys, and
        `chosen` (the filter's value as sent) if it is one of the project's."""
        self.chosen_id = row_id(str(chosen).strip()) if chosen else None
        self.queryset = ApiKey.objects.for_project(project).order_by("name", "id")

    def listed_keys(self) -> tuple[list[ApiKey], list[ApiKey]]:
        """The working keys, and the ended ones, each by name (see ENDED_KEYS_RECENT)."""
        keys = self.queryset
        assert isinstance(keys, ApiKeyQuerySet)
        working = list(keys.active())
        ended_at = Coalesce("revoked_at", "expires_at")
        latest = (
            keys.ended()
            .annotate(seen=Greatest(ended_at, Coalesce("last_refused_at", ended_at)))
            .filter(seen__gte=timezone.now() - ENDED_KEYS_RECENT)
            .order_by("-seen", "-id")
            .values("id")[:ENDED_KEYS_LISTED]
        )
        ended_ids = Q(pk__in=latest)
        if self.chosen_id is not None and all(key.pk != self.chosen_id for key in working):
            ended_ids |= Q(pk=self.chosen_id)
        # Of a name, the newest first: a rotated key's successors share its name.
        ended = list(keys.ended().filter(ended_ids).order_by("name", "-id"))
        return working, ended

    def to_python(self, value: Any) -> ApiKey | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if row_id(text) is None:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            )
        return super().to_python(text)

    def label_from_instance(self, obj: Any) -> str:
        label = f"{obj.name} ({obj.hint})"
        status = obj.status
        return label if status is TokenStatus.ACTIVE else f"{label}, {status.label.lower()}"


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
    agents = forms.CharField(
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


class ApiKeyCreateForm(TokenCreateForm):
    """A new API key for a project, within the project's lifetime policy."""

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        self.project = project
        super().__init__(*args, **kwargs)
        # Right after the name: notes say what the name cannot.
        self.fields["notes"] = _notes_field()
        self.order_fields(["name", "notes"])
        days = project.max_key_lifetime_days
        if days is not None:
            expiry = self.fields["expiry"]
            assert isinstance(expiry, forms.ChoiceField)
            expiry.choices = [
                (value, label)
                for value, label in self.expiry_choices
                if value == "date" or (value.isdigit() and int(value) <= days)
            ]
            expiry.initial = expiry.choices[-2][0] if len(expiry.choices) > 1 else "date"
            expiry.help_text = f"This project's keys expire within {days} days."

    def lifetime_policy(self) -> tuple[int | None, str]:
        return self.project.max_key_lifetime_days, f"Project “{self.project.name}”"

    def clean_name(self) -> str:
        name = _unique_key_name(self.project, self.cleaned_data["name"])
        if working_keys_full(self.project):
            raise forms.ValidationError(too_many_keys_message(), code="too_many")
        return name


class PersonalTokenRenameForm(forms.Form):
    """A personal access token's name."""

    name = ApiKeyNameField()


class NotesField(NoTokenCharField):
    """A key's notes: shown in the list and kept in the audit trail, so, like its name, they
    hold no token ("where it is stored" invites pasting the secret itself)."""


def _notes_field() -> forms.CharField:
    return NotesField(
        label="Notes",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional. What it is for, where it is stored, whom to ask. Shown in the list.",
        error_messages={"max_length": "Keep notes to 500 characters."},
        validators=[no_secret],
    )


class ApiKeyRenameForm(forms.Form):
    """A key's name and notes."""

    name = ApiKeyNameField()
    notes = _notes_field()

    def __init__(self, *args: Any, api_key: ApiKey, **kwargs: Any) -> None:
        self.api_key = api_key
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        return _unique_key_name(self.api_key.project, self.cleaned_data["name"], self.api_key)


def _unique_key_name(project: Project, name: str, renaming: ApiKey | None = None) -> str:
    """Two working keys with one name differ only by their hint in every list and alert:
    refused, whatever the case (an ended key's name may be used again). The database holds
    the same rule for a request that passes this at the same moment as another."""
    if key_name_taken(project, name, renaming):
        raise key_name_taken_error(name)
    return name


def key_name_taken_error(name: str) -> forms.ValidationError:
    """What the name field says when a working key has the name: found by the form's check,
    or (apikeys.services.KeyNameTaken) by the database when another request took it since."""
    return forms.ValidationError(
        "A working key of this project is already called “%(name)s”: give this one a "
        "name you can tell apart (e.g. where it is used).",
        code="taken",
        params={"name": name},
    )


class ApiKeySuspendForm(forms.Form):
    """Why a key is being suspended: one line, no token in it, since callers read it in every
    401 suspended_api_key answer until the key is resumed."""

    reason = NoTokenCharField(
        max_length=SUSPENSION_REASON_MAX,
        label="Reason",
        help_text="Shown to whoever calls with the key, in the 401 suspended_api_key answer, "
        "and to your team on this page. Do not put secrets here.",
        validators=[single_line, no_secret_in_reason],
        error_messages={"required": "Say why, so that callers and your team know."},
    )


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


class KeysTransferForm(forms.Form):
    """Whom the keys of people who left are handed to: a current member."""

    to = forms.ModelChoiceField(
        label="Hand them to",
        queryset=User.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": "Choose a current member of the project."},
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        to = self.fields["to"]
        assert isinstance(to, forms.ModelChoiceField)
        to.queryset = User.objects.filter(memberships__project=project).order_by("email")


class ApiKeyRollForm(forms.Form):
    """How long the secret being replaced keeps working, so that whatever uses it can move
    to the new one without an outage."""

    overlap = forms.ChoiceField(
        label="The current secret keeps working",
        choices=[
            ("now", "Not at all: it stops now"),
            ("1h", "For 1 hour"),
            ("24h", "For 24 hours"),
            ("7d", "For 7 days"),
        ],
        initial="24h",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how long the current secret keeps working.",
            "invalid_choice": "Choose one of the periods shown.",
        },
    )

    # The hint of the secret the form was shown for: a second send of the same form finds
    # the key rolled already, and rolls nothing (apikeys.services.RolledMeanwhile).
    replacing = forms.CharField(widget=forms.HiddenInput, required=False, max_length=40)

    def chosen_overlap(self) -> datetime.timedelta:
        return ROLL_OVERLAPS[self.cleaned_data["overlap"]]

    def replacing_hint(self) -> str | None:
        """None from a form sent before it carried the hint: nothing to compare."""
        return self.cleaned_data["replacing"] or None


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
        return strictest.max_pat_lifetime_days, f"Project “{strictest.name}”"


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
        return strictest.max_pat_lifetime_days, f"Project “{strictest.name}”"

    def replacing_hint(self) -> str | None:
        """None from a form sent before it carried the hint: nothing to compare."""
        return self.cleaned_data["replacing"] or None
