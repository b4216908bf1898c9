"""What the dashboard's filter forms share: the fields that read a log's filters from a
query string (dates in UTC, an address, a row id), and the paged form with its cursors.

Filters are read by forms, never by hand in a view: a form refuses "²" where digits are
expected, a year past 9999, an id past the database's range, each with a message beside
its field, where `str.isdigit()` and `int()` would have answered 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.forms.boundfield import BoundField
from django.forms.renderers import TemplatesSetting
from django.forms.utils import ErrorList

from core.networks import WIDEST_FILTER_PREFIX, NetworkFilterError, filter_network
from core.redact import holds_token, redact_tokens

DATETIME_INPUT = "%Y-%m-%dT%H:%M"
MAX_ROW_ID = 2**63 - 1  # a bigint primary key


def row_id(text: str) -> int | None:
    """The row id written in `text`, or None unless it is ASCII digits alone within the
    bigint range: int() also reads "٣", "²", " 7 " and 4,300-digit numbers, none of them
    an id as our pages write one, and SQLite refuses one past the range."""
    # At most 19 digits before int(): past 4,300 it raises, and none is an id anyway.
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


# The years a filter can name. Outside them no call or event exists, and the arithmetic
# on a range (the day after year 9999's last, a bucket before year 1) would overflow.
FIRST_YEAR, LAST_YEAR = 2000, 2999
OUT_OF_YEARS = f"Enter a date from {FIRST_YEAR} to {LAST_YEAR}."


def _within_years(value: date | None) -> None:
    if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise forms.ValidationError(OUT_OF_YEARS, code="out_of_range")


class UtcDateField(forms.DateField):
    """A whole day in UTC, from year FIRST_YEAR to LAST_YEAR."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            widget=forms.DateInput(
                attrs={"type": "date", "min": f"{FIRST_YEAR}-01-01", "max": f"{LAST_YEAR}-12-31"},
                format="%Y-%m-%d",
            ),
            error_messages={"invalid": "Enter a date, like 2025-06-03."},
            validators=[_within_years],
            **kwargs,
        )


class UtcDateTimeField(forms.DateTimeField):
    """A minute in UTC, from year FIRST_YEAR to LAST_YEAR, typed as the dashboard writes
    times ("4 Dec 2026, 14:30") or as ISO 8601 ("2026-12-04T14:30", what links carry).

    A text field, not a datetime-local picker: the picker shows the browser's local format
    (12/04/2026, 02:30 PM) under a label that says UTC, and no two browsers agree on it."""

    input_formats = [
        "%d %b %Y, %H:%M",
        "%d %b %Y %H:%M",
        "%d %b %Y",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            widget=forms.TextInput(
                attrs={
                    "placeholder": "4 Dec 2026, 14:30",
                    "autocomplete": "off",
                    "spellcheck": "false",
                    "inputmode": "text",
                },
            ),
            error_messages={
                "invalid": "Enter a date and time in UTC, like 4 Dec 2026, 14:30 "
                "(or 2026-12-04 14:30)."
            },
            validators=[_within_years],
            **kwargs,
        )

    def to_python(self, value: Any) -> datetime | None:
        # ISO 8601 with an offset ("…T14:30+05:00") names a moment: the same moment in UTC.
        # Never the offset as written: ISO allows up to ±23:59, and PostgreSQL refuses a
        # timestamptz past ±15:59 inside the query (a 500, not an error beside the field).
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # year 9999 at -23:59 is year 10000 in UTC
            raise forms.ValidationError(OUT_OF_YEARS, code="out_of_range") from None

    def prepare_value(self, value: Any) -> Any:
        # What a link carries (ISO, perhaps with an offset) is shown back as the dashboard
        # writes times, in UTC; what does not read is shown as typed, beside its error.
        # A year outside FIRST_YEAR..LAST_YEAR is an error too: rewritten ("1 Jun 999"), it
        # would no longer read once its year was corrected.
        if isinstance(value, str) and value:
            try:
                moment = self.to_python(value)
                _within_years(moment)
            except forms.ValidationError:
                return value
            value = moment
        if isinstance(value, datetime):
            return f"{value:%-d %b %Y, %H:%M}"
        return value


class IpAddressFilterField(forms.GenericIPAddressField):
    """An IPv4 or IPv6 address to narrow a log to."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "IP address")
        super().__init__(
            required=False,
            widget=forms.TextInput(
                attrs={"placeholder": "203.0.113.7", "autocomplete": "off", "spellcheck": "false"}
            ),
            error_messages={"invalid": "Enter an IPv4 or IPv6 address, like 203.0.113.7."},
            **kwargs,
        )


class PrintableInput(forms.TextInput):
    """A text box that writes back what was typed only if it could be a value mistyped:
    never a NUL byte or other control character, never thousands of characters."""

    shown_at_most = 100

    def format_value(self, value: Any) -> str | None:
        text = super().format_value(value)
        if text is None or len(text) > self.shown_at_most or not text.isprintable():
            return None
        return text


class IpOrNetworkFilterField(forms.CharField):
    """An address, or a network (a new-network alert names a /24 or a /48), to narrow a
    call log to: the canonical address, the canonical network ("45.83.64.0/24"), or ""."""

    default_error_messages = {
        "invalid": "Enter an IPv4 or IPv6 address, like 203.0.113.7, "
        "or a network, like 203.0.113.0/24.",
        "host_bits": "Enter the network as %(network)s: the bits past its prefix must be 0.",
        "ipv4_mapped": "Write an IPv4 network as IPv4, like 203.0.113.0/24.",
        "too_wide_v4": f"Choose a network of at least /{WIDEST_FILTER_PREFIX[4]} for IPv4.",
        "too_wide_v6": f"Choose a network of at least /{WIDEST_FILTER_PREFIX[6]} for IPv6.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "IP address or network")
        super().__init__(
            required=False,
            widget=PrintableInput(
                attrs={
                    "placeholder": "203.0.113.0/24",
                    "autocomplete": "off",
                    "spellcheck": "false",
                }
            ),
            **kwargs,
        )
        # An IPv4 address written as IPv6 (::ffff:a.b.c.d, as a dual-stack server logs it)
        # is read as the IPv4 address the log holds it as (core.client_ip).
        self._address = forms.GenericIPAddressField(
            unpack_ipv4=True, error_messages={"invalid": self.error_messages["invalid"]}
        )

    def to_python(self, value: Any) -> str:
        # Before CharField's own checks, whose NUL message would stand beside this one.
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            return ""
        if "/" not in text:
            if not text.isascii() or not text.isprintable() or len(text) > 45:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            return str(self._address.clean(text))
        try:
            return filter_network(text)
        except NetworkFilterError as wrong:
            raise forms.ValidationError(
                self.error_messages[wrong.code],
                code=wrong.code,
                params={"network": wrong.suggestion},
            ) from None


class RowIdField(forms.IntegerField):
    """A row id from a link (a pager position, a key to narrow to): ASCII digits within
    the database's range, or the message in `invalid`."""

    def __init__(self, *, invalid: str, hidden: bool = True, **kwargs: Any) -> None:
        messages = {"invalid": invalid, "min_value": invalid, "max_value": invalid}
        super().__init__(
            required=False,
            min_value=1,
            max_value=MAX_ROW_ID,
            widget=forms.HiddenInput if hidden else forms.NumberInput,
            error_messages=messages,
            **kwargs,
        )

    def to_python(self, value: Any) -> int | None:
        # int() takes "²", "٣" and " 7 "; a link carries plain ASCII digits or nothing.
        if isinstance(value, str) and value.strip() and not value.strip().isascii():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class RowChoicesField(forms.ModelMultipleChoiceField):
    """Rows ticked in a list (checkboxes of ids). An id that is not ASCII digits within
    the bigint range is "not a choice", asked of no database: SQLite cannot take one past
    the range in the IN of the query that checks the others."""

    def clean(self, value: Any) -> Any:
        for item in value if isinstance(value, list | tuple) else ():
            if row_id(str(item).strip()) is None:
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"],
                    code="invalid_choice",
                    params={"value": item},
                )
        return super().clean(value)


class PagedFilterForm(forms.Form):
    """A GET form of optional filters plus a `before` or `after` pager cursor.

    Subclasses name their filters in `filter_fields` and give `error_messages` a
    "two_cursors" text; a filter a subclass removed from `fields` is ignored. How the
    rows are shown (an order) is named in `view_fields`: links keep it, but it narrows
    nothing, so a page with it alone is not "filtered".
    """

    filter_fields: tuple[str, ...] = ()
    view_fields: tuple[str, ...] = ()
    error_messages: dict[str, str] = {}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("before") and data.get("after"):
            raise forms.ValidationError(self.error_messages["two_cursors"], code="two_cursors")
        return data

    def _given(self, names: tuple[str, ...] | None = None) -> list[str]:
        names = self.filter_fields if names is None else names
        return [n for n in names if n in self.fields and self.data.get(n)]

    @property
    def is_filtered(self) -> bool:
        return bool(self._given())

    @property
    def cursor_errors(self) -> list[str]:
        """Errors of the page position, which has no field on screen to stand beside;
        each text once (both cursors damaged say the same)."""
        return list(
            dict.fromkeys(
                [
                    *self.non_field_errors(),
                    *self.errors.get("before", []),
                    *self.errors.get("after", []),
                ]
            )
        )

    def query(self, **cursor: object) -> str:
        """This form's filters as a query string, with `cursor` (before= or after=) added."""
        params = {name: self.data[name] for name in self._given()}
        params.update({name: self.data[name] for name in self._given(self.view_fields)})
        params.update({name: str(value) for name, value in cursor.items() if value is not None})
        return urlencode(params)


class NoTokenCharField(forms.CharField):
    """Text that must hold no token (give it the no_secret validator): one pasted in is
    refused beside the field and not written back into the page that says so, where it
    would sit in the HTML, the browser's form history and any screenshot.

    The length is checked first, and a text past it is refused for that alone: the token
    check reads non-ASCII text a character at a time (core.redact), about a second for a
    megabyte of CJK, which a POST of that size would otherwise spend on every request.
    """

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Past its length (no browser sends that: the input's maxlength), not shown back.
        if isinstance(data, str) and (self._too_long(data) or holds_token(data)):
            return ""
        return super().bound_data(data, initial)

    def run_validators(self, value: Any) -> None:
        if isinstance(value, str) and self._too_long(value):
            self._refuse_length(value)
        super().run_validators(value)

    def _too_long(self, text: str) -> bool:
        return self.max_length is not None and len(text) > int(self.max_length)

    def _refuse_length(self, value: str) -> None:
        """The length's error alone, worded as Field.run_validators words it."""
        try:
            MaxLengthValidator(self.max_length)(value)
        except ValidationError as refused:
            if "max_length" in self.error_messages:
                refused.message = self.error_messages["max_length"]
            raise


# Past this, or past the field's own max_length where that is longer, a value is not
# shown back in its field (no browser sends that much: every input has a maxlength), and
# the token check, a character at a time for text beyond ASCII (core.redact), is not
# spent on it.
_SHOWN_BACK_AT_MOST = 10_000


def _not_shown_back(value: object, *, at_most: int) -> bool:
    return isinstance(value, str) and value != "" and (len(value) > at_most or holds_token(value))


class NoSecretBoundField(BoundField):
    """Every field of every form, as a page shows it after it was sent: a token pasted
    into any of them is neither shown back in the field nor repeated by its error ("…
    is not one of the available choices"), where it would sit in the HTML, the browser's
    form history and any screenshot. The contract: a token is never written to a later
    page. What is typed is kept otherwise."""

    @property
    def _shown_back_at_most(self) -> int:
        # A textarea that may rightly hold more (the allowed origins) says so by its
        # max_length: what was typed there is kept to be corrected.
        return max(_SHOWN_BACK_AT_MOST, getattr(self.field, "max_length", None) or 0)

    def _not_shown_back(self, value: object) -> bool:
        # A render reads a field's value and errors several times (the input, its aria
        # attributes, the error list): the token check, a character at a time beyond
        # ASCII, runs once per value. Kept on this bound field, which goes with its form,
        # not in a cache of the process (the values include passwords).
        if not isinstance(value, str):
            return False
        checked: dict[str, bool] = self.__dict__.setdefault("_checked", {})
        if value not in checked:
            checked[value] = _not_shown_back(value, at_most=self._shown_back_at_most)
        return checked[value]

    def value(self) -> Any:
        value = super().value()
        if not self.form.is_bound:
            return value
        if isinstance(value, list | tuple):
            return [item for item in value if not self._not_shown_back(item)]
        return "" if self._not_shown_back(value) else value

    @property
    def errors(self) -> ErrorList:
        errors = super().errors
        if not errors or not self.form.is_bound:
            return errors
        sent = self.data if isinstance(self.data, list | tuple) else [self.data]
        hidden = [value for value in sent if self._not_shown_back(value)]
        if not hidden:
            return errors
        redacted = errors.copy()
        # copy() leaves out the field's id, which the error's id is made from (the stubs
        # do not know the attribute yet).
        redacted.field_id = errors.field_id  # type: ignore[attr-defined]
        redacted.data = [_without(str(message), hidden) for message in errors]
        return redacted


def _without(message: str, hidden: list[str]) -> str:
    for value in hidden:
        message = message.replace(value, "(not shown)")
    return redact_tokens(message)


class FormRenderer(TemplatesSetting):
    """Django's TemplatesSetting, with fields bound as NoSecretBoundField."""

    bound_field_class = NoSecretBoundField
