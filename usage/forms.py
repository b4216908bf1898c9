"""The usage pages' filter forms: the call logs (a key's, a personal access token's, the
project's), and the project's overview."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django import forms
from django.utils import timezone

from accounts.models import Project
from apikeys.forms import ProjectKeyChoiceField
from apikeys.tokens import TokenKind
from core.forms import (
    DATETIME_INPUT,
    IpOrNetworkFilterField,
    PagedFilterForm,
    PrintableInput,
    UtcDateTimeField,
)
from usage.key_usage import (
    CALLER_CLIENT_TOKENS,
    CALLER_KEY,
    TEXT_SEARCH_SPAN,
    Cursor,
    LogFilters,
)
from usage.models import Outcome
from usage.overview import LONGEST_RANGE, OverviewFilters, Stack, TimeRange
from usage.project_log import ProjectLogFilters

OVERVIEW_FILTER_FIELDS = ("range", "since", "until", "key", "token_kind", "outcome", "ip")
CUSTOM = "custom"
PRESETS: dict[str, tuple[str, int, bool]] = {
    # name on the page, how many, of days (else hours)
    "24h": ("Last 24 hours", 24, False),
    "7d": ("Last 7 days", 7, True),
    "30d": ("Last 30 days", 30, True),
}
DEFAULT_RANGE = "24h"
OLDEST = "oldest"  # a call log's order, oldest first; the default is newest first


class OutcomeFilterField(forms.ChoiceField):
    """One outcome of a call (succeeded, client error, auth failure…) to narrow to."""

    def __init__(self) -> None:
        super().__init__(
            label="Outcome",
            required=False,
            choices=[("", "Any outcome"), *Outcome.choices],
            error_messages={"invalid_choice": "Choose an outcome from the list."},
        )


# The names an agent can have (agents.models.AGENT_NAME_PATTERN, is_agent_name in
# agents/api.py): usage sits below agents, so it says them again; a test holds them equal.
AGENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AgentNameInput(forms.TextInput):
    """A text box that writes back what was typed only if it could be a name mistyped:
    never a NUL byte or other control character, never thousands of characters."""

    def format_value(self, value: Any) -> str | None:
        text = super().format_value(value)
        if text is None or len(text) > 2 * 64 or not text.isprintable():
            return None
        return text


class AgentNameFilterField(forms.CharField):
    """The agent a call named, to narrow a log to (as the agent's own endpoints take it)."""

    default_error_messages = {
        "invalid": "Enter an agent name: letters, digits, - and _, at most 64 of them."
    }

    def __init__(self) -> None:
        super().__init__(
            label="Agent",
            required=False,
            widget=AgentNameInput(
                attrs={"placeholder": "my-agent", "autocomplete": "off", "spellcheck": "false"}
            ),
        )

    def to_python(self, value: Any) -> str:
        # Before CharField's own checks, whose NUL message would stand beside this one.
        text = value.strip() if isinstance(value, str) else value
        if text and not (isinstance(text, str) and AGENT_NAME.fullmatch(text)):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return str(super().to_python(text))


class TextInput(PrintableInput):
    """A text box that writes back up to a column's length of what was typed, if printable."""

    shown_at_most = 255


class SearchTextField(forms.CharField):
    """Text to look for in a call's column (its user agent, its path), as typed: one line
    of printable characters, at most the column's 255 (no longer text is in a row). Never
    a NUL, which PostgreSQL refuses in a query, nor a lone surrogate, which no database
    stores; both are refused here rather than answered 500 there."""

    def __init__(self, *, label: str, placeholder: str, invalid: str, start: str = "") -> None:
        self.start = start
        super().__init__(
            label=label,
            required=False,
            max_length=255,
            widget=TextInput(
                attrs={"placeholder": placeholder, "autocomplete": "off", "spellcheck": "false"}
            ),
            error_messages={"invalid": invalid},
        )

    def to_python(self, value: Any) -> str:
        # Before CharField's own checks, whose NUL and length messages would stand beside
        # this one.
        text = value.strip() if isinstance(value, str) else ""
        if text and (len(text) > 255 or not text.isprintable() or not text.startswith(self.start)):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return text


class CursorField(forms.CharField):
    """A page position from a pager link (see usage.key_usage.Cursor)."""

    default_error_messages = {
        "invalid": "This page link is damaged or out of date. Start again from the newest calls."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, max_length=64, widget=forms.HiddenInput, **kwargs)

    def clean(self, value: Any) -> Cursor | None:
        text = super().clean(value)
        if not text:
            return None
        try:
            return Cursor.parse(text)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class UsageFilterForm(PagedFilterForm):
    """What every call log is narrowed by (each log takes more: TextLogFilterForm). Every
    field is optional; an empty form shows every call.

    Also reads the pager's cursor (`before` or `after`), which the form never renders.
    """

    outcome = OutcomeFilterField()
    status = forms.IntegerField(
        label="Status",
        required=False,
        min_value=100,
        max_value=599,
        widget=forms.NumberInput(attrs={"placeholder": "401", "inputmode": "numeric"}),
        error_messages={
            "invalid": "Enter an HTTP status code, like 401.",
            "min_value": "Enter an HTTP status code from 100 to 599.",
            "max_value": "Enter an HTTP status code from 100 to 599.",
        },
    )
    ip = IpOrNetworkFilterField()
    since = UtcDateTimeField(label="From (UTC)")
    until = UtcDateTimeField(label="To (UTC)")
    client_token = forms.RegexField(
        label="Client token",
        regex=r"^ctok_[A-Za-z0-9]{20}$",
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "ctok_…", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"invalid": "Enter a client token id, like ctok_ and 20 letters or digits."},
    )
    agent = AgentNameFilterField()
    order = forms.ChoiceField(
        label="Order",
        required=False,
        choices=[("", "Newest first"), (OLDEST, "Oldest first")],
        error_messages={"invalid_choice": "Choose an order from the list."},
    )
    before = CursorField()
    after = CursorField()

    filter_fields: tuple[str, ...] = (
        "outcome",
        "status",
        "ip",
        "since",
        "until",
        "client_token",
        "agent",
    )
    view_fields: tuple[str, ...] = ("order",)
    error_messages = {
        "empty_range": "“To” must be later than “From”.",
        "two_cursors": "This page link is damaged. Start again from the newest calls.",
    }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error(
                "until",
                forms.ValidationError(self.error_messages["empty_range"], code="empty_range"),
            )
        return data

    @property
    def oldest_first(self) -> bool:
        return self.cleaned_data.get("order") == OLDEST

    def filters(self) -> LogFilters:
        data = self.cleaned_data
        return LogFilters(
            outcome=data["outcome"],
            status=data["status"],
            ip=data["ip"],
            since=data["since"],
            until=data["until"],
            client_token=data["client_token"],
            agent=data["agent"],
        )


ADDRESS_CURSOR_DAMAGED = (
    "This page link is damaged or out of date. Start again from the latest addresses."
)


class AddressPageForm(PagedFilterForm):
    """The page position (`before` or `after`) in a key's list of addresses."""

    before = CursorField(error_messages={"invalid": ADDRESS_CURSOR_DAMAGED})
    after = CursorField(error_messages={"invalid": ADDRESS_CURSOR_DAMAGED})

    error_messages = {
        "two_cursors": "This page link is damaged. Start again from the latest addresses."
    }


SPAN_HOURS = int(TEXT_SEARCH_SPAN.total_seconds() // 3600)


class TextLogFilterForm(UsageFilterForm):
    """What every call log searches (a key's and a PAT's add their Caller, the project's
    more): the filters every call log has, and user agent and path.

    The user agent and path search TEXT_SEARCH_SPAN of calls at a time (they have no
    index: usage/key_usage.py). Given without a "From", the span up to "To" (or the
    next minute) is filled into both fields, as if typed: the page shows what was
    searched, and its links and export keep that span rather than a later one.
    """

    user_agent = SearchTextField(
        label="User agent contains",
        placeholder="python-requests",
        invalid="Enter part of a user agent: one line of at most 255 characters.",
    )
    path = SearchTextField(
        label="Path starts with",
        placeholder="/v1/api-keys",
        invalid="Enter the start of a path, like /v1/api-keys: at most 255 characters.",
        start="/",
    )

    filter_fields = (*UsageFilterForm.filter_fields, "user_agent", "path")
    error_messages = {
        **UsageFilterForm.error_messages,
        "text_span": f"A user agent or path is searched over at most {SPAN_HOURS} hours: "
        f"choose a “From” at most {SPAN_HOURS} hours before “To” (or now).",
    }
    text_span_hours = SPAN_HOURS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.searches_text and not (self.has_error("since") or self.has_error("until")):
            self._bound_text_search(data)
        return data

    @property
    def searches_text(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return bool(data.get("user_agent") or data.get("path"))

    def _bound_text_search(self, data: dict[str, Any]) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None:
            if (until or timezone.now()) - since > TEXT_SEARCH_SPAN:
                error = forms.ValidationError(self.error_messages["text_span"], code="text_span")
                self.add_error("since", error)
            return
        # A whole minute: the fields (and links) hold minutes, and the span they name
        # must read back as the same span.
        until = until or (timezone.now() + timedelta(minutes=1)).replace(second=0, microsecond=0)
        since = until - TEXT_SEARCH_SPAN
        data["since"], data["until"] = since, until
        filled = self.data.copy()  # type: ignore[attr-defined]  # a QueryDict or a dict
        filled["since"] = f"{since:{DATETIME_INPUT}}"
        filled["until"] = f"{until:{DATETIME_INPUT}}"
        self.data = filled

    def filters(self) -> LogFilters:
        data = self.cleaned_data
        return replace(super().filters(), user_agent=data["user_agent"], path=data["path"])


REQUEST_ID = r"^req_[0-9a-f]{24}$"


class CallerLogFilterForm(TextLogFilterForm):
    """A token's call log that holds two kinds of call, those made with the token itself
    and those of the client tokens it minted (a key's, a PAT's): every log's filters,
    and which kind (Caller), or both. `itself` names the token in the choices and the
    error; `itself_value` is the choice for its own calls."""

    itself = "the token"
    itself_value = CALLER_KEY

    caller = forms.ChoiceField(
        label="Caller",
        required=False,
        error_messages={"invalid_choice": "Choose a caller from the list."},
    )

    filter_fields = (*TextLogFilterForm.filter_fields, "caller")
    error_messages = {
        **TextLogFilterForm.error_messages,
        "token_not_own": "A client token’s calls are not {itself}’s own: choose “Its client "
        "tokens” (or both) to see them.",
    }

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        caller = self.fields["caller"]
        assert isinstance(caller, forms.ChoiceField)
        caller.choices = [
            ("", f"{self.itself.capitalize()} and its client tokens"),
            (self.itself_value, f"{self.itself.capitalize()} itself"),
            (CALLER_CLIENT_TOKENS, "Its client tokens"),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("caller") == self.itself_value and data.get("client_token"):
            message = self.error_messages["token_not_own"].format(itself=self.itself)
            self.add_error("caller", forms.ValidationError(message, code="token_not_own"))
        return data

    def filters(self) -> LogFilters:
        chosen = self.cleaned_data["caller"]
        caller = CALLER_KEY if chosen == self.itself_value else chosen
        return replace(super().filters(), caller=caller)


# A PAT's own calls, in its log's address: ?caller=token (a key's log says key).
CALLER_TOKEN = "token"


class PersonalTokenLogFilterForm(CallerLogFilterForm):
    """A personal access token's call log: its own calls, those of the client tokens it
    minted (POST /v1/client-tokens with the PAT and X-Project), or both."""

    itself_value = CALLER_TOKEN


class KeyLogFilterForm(CallerLogFilterForm):
    """A key's call log: its own calls, its client tokens', or both. The usage page's two
    address tables open the log at an address with their own kind."""

    itself = "the key"

    def project_export_query(self) -> str:
        """This log's filters as the project's call export reads them (the key is named
        beside them): there the caller is a token type, a key's own calls API key calls
        and its client tokens' client token calls."""
        params = dict(parse_qsl(self.query()))
        caller = params.pop("caller", "")
        if caller:
            kinds = {CALLER_KEY: TokenKind.API_KEY, CALLER_CLIENT_TOKENS: TokenKind.CLIENT_TOKEN}
            params["token_kind"] = kinds[caller].value
        return urlencode(params)


class ProjectLogFilterForm(TextLogFilterForm):
    """The project's call log: every log's filters, and key, token type and request id."""

    key = ProjectKeyChoiceField(label="Key", empty_label="Any key")
    token_kind = forms.ChoiceField(
        label="Token type",
        required=False,
        choices=[("", "Any token type"), *TokenKind.choices],
        error_messages={"invalid_choice": "Choose a token type from the list."},
    )
    request_id = forms.RegexField(
        label="Request id",
        regex=REQUEST_ID,
        required=False,
        strip=True,
        widget=forms.TextInput(
            attrs={"placeholder": "req_…", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"invalid": "Enter a request id, like req_ and 24 hex digits."},
    )

    filter_fields = (
        *UsageFilterForm.filter_fields,
        "key",
        "token_kind",
        "request_id",
        "user_agent",
        "path",
    )

    def __init__(self, data: Any, *, project: Project) -> None:
        super().__init__(data)
        key_field = self.fields["key"]
        assert isinstance(key_field, ProjectKeyChoiceField)
        key_field.offer(project, chosen=self.data.get("key"))
        self.order_fields(
            [
                "key",
                "token_kind",
                "agent",
                "outcome",
                "status",
                "ip",
                "since",
                "until",
                "request_id",
                "user_agent",
                "path",
                "client_token",
                "order",
            ]
        )

    def key_log_query(self) -> str:
        """This log's filters as a key's log reads them, for its links to a key: the
        key's calls this log lists. The token type becomes the key log's Caller; the key
        is in the link's path, and a request id (which a key's log has no filter for)
        is one call, whose row links to it."""
        params = dict(parse_qsl(self.query()))
        for name in ("key", "request_id"):
            params.pop(name, None)
        kind = params.pop("token_kind", "")
        callers = {
            TokenKind.API_KEY.value: CALLER_KEY,
            TokenKind.CLIENT_TOKEN.value: CALLER_CLIENT_TOKENS,
        }
        if kind in callers:
            params["caller"] = callers[kind]
        return urlencode(params)

    def project_filters(self) -> ProjectLogFilters:
        data = self.cleaned_data
        return ProjectLogFilters(
            calls=self.filters(),
            api_key=data["key"],
            token_kind=data["token_kind"],
            request_id=data["request_id"],
        )


class OverviewFilterForm(forms.Form):
    """What the overview counts. Every field is optional: an empty form shows every call
    of the last 24 hours. A custom range is `since` to `until` (exclusive, default now).

    `stack` (what the bars are split by) is how the page looks, not what it counts: an
    unknown value falls back to the default rather than failing the form.
    """

    range = forms.ChoiceField(
        label="Time range",
        required=False,
        choices=[*((name, label) for name, (label, _, _) in PRESETS.items()), (CUSTOM, "Custom")],
        error_messages={"invalid_choice": "Choose a time range from the list."},
    )
    since = UtcDateTimeField(label="From (UTC)")
    until = UtcDateTimeField(label="To (UTC)")
    key = ProjectKeyChoiceField(label="Key", empty_label="Any key")
    token_kind = forms.ChoiceField(
        label="Token type",
        required=False,
        choices=[("", "Any token type"), *TokenKind.choices],
        error_messages={"invalid_choice": "Choose a token type from the list."},
    )
    outcome = OutcomeFilterField()
    # The call log's field: an address, or a network as a new-network alert names one.
    ip = IpOrNetworkFilterField()
    # Any text at all (a CharField refuses a NUL, and a hidden field's error shows
    # nowhere): clean_stack takes the default for anything it does not know.
    stack = forms.Field(required=False, widget=forms.HiddenInput)

    error_messages = {
        "since_required": "Enter when the range starts.",
        "empty_range": "“To” must be later than “From”.",
        "since_future": "With no “To” the range ends now: pick a “From” before now.",
        "too_long": f"Choose a range of at most {LONGEST_RANGE.days} days.",
    }

    def __init__(self, data: Any, *, project: Project, now: datetime) -> None:
        super().__init__(data)
        self.now = now
        key_field = self.fields["key"]
        assert isinstance(key_field, ProjectKeyChoiceField)
        key_field.offer(project, chosen=self.data.get("key"))

    def clean_range(self) -> str:
        chosen = self.cleaned_data["range"]
        if chosen:
            return chosen
        # A link that gives only dates (?since=…) means a custom range.
        return CUSTOM if self.is_custom else DEFAULT_RANGE

    def clean_stack(self) -> str:
        stack = self.cleaned_data["stack"]
        # Split by outcome unless asked otherwise: refused calls show without a click.
        return stack if stack in dict(Stack.choices) else Stack.OUTCOME

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        chosen = data.get("range")
        if chosen in PRESETS:
            name, count, days = PRESETS[chosen]
            make = TimeRange.last_days if days else TimeRange.last_hours
            data["time_range"] = make(count, now=self.now, name=name)
        elif chosen == CUSTOM and not self.has_error("since") and not self.has_error("until"):
            data["time_range"] = self._custom_range(data.get("since"), data.get("until"))
        return data

    def _custom_range(self, since: datetime | None, until: datetime | None) -> TimeRange | None:
        if since is None:
            self._fail("since", "since_required")
            return None
        if until is None and since >= self.now:
            # The range ends now: the "From" is wrong, not the "To" nobody typed.
            self._fail("since", "since_future")
            return None
        until = until or self.now
        if until <= since:
            self._fail("until", "empty_range")
            return None
        if until - since > LONGEST_RANGE:
            self._fail("since", "too_long")
            return None
        return TimeRange(since.astimezone(UTC), until.astimezone(UTC), "Chosen range")

    def _fail(self, field: str, code: str) -> None:
        self.add_error(field, forms.ValidationError(self.error_messages[code], code=code))

    def filters(self) -> OverviewFilters:
        data = self.cleaned_data
        return OverviewFilters(
            time_range=data["time_range"],
            api_key=data["key"],
            token_kind=data["token_kind"],
            outcome=data["outcome"],
            ip=data["ip"],
        )

    @property
    def is_filtered(self) -> bool:
        return any(self.data.get(name) for name in OVERVIEW_FILTER_FIELDS)

    @property
    def is_custom(self) -> bool:
        chosen = self.data.get("range")
        if chosen:
            return chosen == CUSTOM
        return bool(self.data.get("since") or self.data.get("until"))

    def query(self, *, with_stack: bool = True, **changes: str) -> str:
        """The filters as given, without the empty fields, with `changes` made."""
        names = (*OVERVIEW_FILTER_FIELDS, "stack") if with_stack else OVERVIEW_FILTER_FIELDS
        params = {name: self.data[name] for name in names if self.data.get(name)}
        if not self.is_custom:
            # A preset range ignores the dates that a hidden custom range left in the form.
            params.pop("since", None)
            params.pop("until", None)
        if params.get("stack") == Stack.OUTCOME:
            params.pop("stack")
        for name, value in changes.items():
            if value:
                params[name] = value
            else:
                params.pop(name, None)
        return urlencode(params)
