"""Every dashboard page that answers GET (the role matrix's tables, which name every URL
the resolver has) asked with the nastiest query values as each kind of visitor: an
owner, a plain member, someone signed out, a member of another project only. Never a 500
nor an ERROR in the log; no redirect (a `next` followed) leaves the site; a token in the
query is never written into the page (filter pages send the browser on without it,
tests/core/test_tokens_pasted_into_filters.py); a filter refused says so beside its
field; another project's page is 404, a member is refused an owner's page, and someone
signed out is sent to sign in, whatever the query says.

tests/core/test_filter_properties.py feeds the filter forms many more values; this one
covers every page, every visitor and what a page reads besides its form (`next`,
`page`, `q`). A page's parameters are those its form declares, so a filter added to a
form is swept with no change here. The full cross product of pages, parameters, ~45
values and the four visitors was some 50,000 requests (38 minutes); sampled here, about
1,000: to the owner, each value in every parameter of a page at once, and the values a
form may let through to its query one parameter at a time; to the others, the sharpest
few, as each page answers them before it reads its query."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
from django import forms
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User
from alerts.forms import FlagFilterForm
from apikeys.forms.client_tokens import ClientTokenFilterForm
from audit.forms import AuditFilterForm
from tests.accounts.test_role_matrix import (  # noqa: F401  # fixtures
    ACCOUNT_POLICY,
    NOT_ACCOUNT_OR_PROJECT,
    OWNER,
    PROJECT_POLICY,
    World,
    as_,
    elsewhere,
)
from tests.accounts.world import world  # noqa: F401  # fixture
from tests.conftest import HTMX
from usage.forms import (
    AddressPageForm,
    KeyLogFilterForm,
    OverviewFilterForm,
    PersonalTokenLogFilterForm,
    ProjectLogFilterForm,
)
from usage.key_usage import Cursor
from usage.models import UsageRecord

# What a page reads from its query: its filter form's fields, or what its view reads.
FORMS: dict[str, type[forms.Form]] = {
    "usage:project_usage": OverviewFilterForm,
    "usage:project_usage_export": OverviewFilterForm,
    "usage:api_key_usage": KeyLogFilterForm,
    "usage:project_calls": ProjectLogFilterForm,
    "usage:project_calls_export": ProjectLogFilterForm,
    "usage:personal_token_usage": PersonalTokenLogFilterForm,
    "usage:personal_token_usage_export": PersonalTokenLogFilterForm,
    "usage:api_key_addresses": AddressPageForm,
    "usage:api_key_token_addresses": AddressPageForm,
    "apikeys:client_token_list": ClientTokenFilterForm,
    "alerts:flag_list": FlagFilterForm,
    "accounts:project_audit": AuditFilterForm,
    "accounts:project_audit_csv": AuditFilterForm,
    "accounts:user_audit": AuditFilterForm,
    "accounts:user_audit_csv": AuditFilterForm,
}
READ_BY_VIEW: dict[str, tuple[str, ...]] = {
    # apikeys.views.api_keys._keys_context
    "apikeys:api_key_list": ("q", "sort", "page", "ended_page"),
    "accounts:project_members": ("q", "page"),
    # Django's sign-in and our sign-up: where to go once signed in.
    "accounts:login": ("next",),
    "accounts:signup": ("next",),
    "accounts:login_code": ("next",),
}
# The same form as a page's, read by the same code: swept with a few values (FEW) in
# every parameter at once, and those a form lets through one at a time. Exports (their
# rows are streamed: that is what differs)...
EXPORTS = {
    "usage:project_usage_export",
    "usage:project_calls_export",
    "usage:personal_token_usage_export",
    "accounts:project_audit_csv",
    "accounts:user_audit_csv",
}
# ...and the key pages' dialogs, which draw the key list behind them, with its query.
LIKE_PAGE = {
    name: "apikeys:api_key_list"
    for name in (
        "apikeys:api_key_create",
        "apikeys:api_key_rename",
        "apikeys:api_key_revoke",
        "apikeys:api_key_roll",
        "apikeys:api_key_suspend",
    )
}
# Read by no page, or by Django's sign-in: sent to every page all the same.
EVERYWHERE = ("next", "page")

# Pages for anyone, with the arguments their URLs take (none of them a real one).
PUBLIC_ARGS: dict[str, dict[str, str]] = {
    "accounts:email_verify": {"token": "abc"},
    "accounts:password_reset_confirm": {"uidb64": "MQ", "token": "set-password"},
    "accounts:invitation_accept": {"token": "abc"},
}

SURROGATE = "%ED%A0%80"  # a lone surrogate's UTF-8 bytes: no str holds it


def params_of(name: str) -> tuple[str, ...]:
    name = LIKE_PAGE.get(name, name)
    read = tuple(FORMS[name].base_fields) if name in FORMS else READ_BY_VIEW.get(name, ())
    return tuple(dict.fromkeys((*read, *EVERYWHERE)))


@pytest.fixture
def pages(world: World) -> dict[str, str]:  # noqa: F811
    """Every dashboard URL that takes GET, with a real object of the project in it."""
    found = {
        name: reverse(name, kwargs={"slug": world.project.slug, **rule.args(world)})
        for name, rule in PROJECT_POLICY.items()
        if rule.get
    }
    found |= {name: reverse(name, kwargs=rule.args(world)) for name, rule in ACCOUNT_POLICY.items()}
    found |= {
        name: reverse(name, kwargs=PUBLIC_ARGS.get(name, {})) for name in NOT_ACCOUNT_OR_PROJECT
    }
    return found


def nasty(world: World, elsewhere: World) -> list[str]:  # noqa: F811
    """Query values, already quoted."""
    other_cursor = str(Cursor.of(UsageRecord.objects.filter(project=elsewhere.project).get()))
    values = [
        # The sharpest first: every visitor is sent these (FEW).
        "x" * 10_000,
        world.key_secret,
        SURROGATE,
        "//evil.example",
        "/\\evil.example",
        "a\x00b",
        "",
        "²",
        "١٢",
        "１２",
        "-1",
        str(10**40),
        "1e400",
        "NaN",
        "9999-12-31T23:59",
        "10000-01-01",
        "a\r\nb",
        "../../",
        other_cursor,
        str(elsewhere.key.pk),
        "https://evil.example",
        "javascript:alert(1)",
    ]
    return [v if v == SURROGATE else quote(v, safe="") for v in values]


# The values a form may let through to its query, each tried in one parameter alone
# (beside an odd value in another field, the form is refused before any query runs).
LET_THROUGH = ("１２", str(10**40), "9999-12-31T23:59", "a\x00b", "../../")


class Errors(logging.Handler):
    """ERROR records of every logger, those that do not propagate (django.request) too."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors_logged() -> Iterator[Errors]:
    handler = Errors()
    loggers = [logging.getLogger(), logging.getLogger("django.request")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def off_site(address: str) -> bool:
    parts = urlsplit(address)
    return (
        parts.netloc not in ("", "testserver")
        or parts.scheme not in ("", "http", "https")
        or address.startswith(("//", "/\\"))
        or any(c in address for c in "\r\n\\")
    )


# How a page says its query was refused: errors beside fields; a page position's error
# above the list; what the Alerts and Client tokens lists, swapped in by htmx below a
# filter that is a select, say of a key or a page link not theirs.
ERRORS_SAID = (
    b'class="errorlist',
    b'role="alert"',
    b"Choose a key from the list above",
    b"page link is damaged",
)
# Django's sign-in carries `next` as given (checked when it is followed), a token too.
CARRY_NEXT = {"accounts:login", "accounts:signup", "accounts:login_code"}
# Pages that read no more than EVERYWHERE's parameters take the same path whatever the
# value: a few values are enough there.
FEW = 4


class Sweep:
    """Sends queries to pages as one visitor and notes what went wrong, for one list."""

    def __init__(self, who: str, client: Client, errors: Errors, secret: str) -> None:
        self.who, self.client, self.errors, self.secret = who, client, errors, secret
        self.failures: list[str] = []

    def ask(
        self, name: str, url: str, query: str, *, htmx: bool = False, expect: int | None = None
    ) -> int:
        self.errors.records.clear()
        response = self.client.get(f"{url}?{query}", headers=HTMX if htmx else {})
        body = (
            b"".join(response.streaming_content)
            if getattr(response, "streaming", False)
            else response.content
        )
        status = response.status_code
        went = response.get("Location", "") or response.get("HX-Redirect", "")
        what = f"{self.who}: {name} ?{query[:60]}{' (htmx)' if htmx else ''}"
        if status >= 500 or self.errors.records:
            logged = [r.getMessage()[:120] for r in self.errors.records]
            self.failures.append(f"{what}: {status} {logged}")
        if went and off_site(went):
            self.failures.append(f"{what}: sent to {went[:120]}")
        if name not in CARRY_NEXT and self.secret[12:].encode() in body:
            self.failures.append(f"{what}: the token is written into the page")
        pasted = self.secret in query
        if expect is not None and status != expect and not (pasted and status == 303):
            self.failures.append(f"{what}: {status}, not {expect}")
        return status

    def refused(self, name: str, url: str, query: str, htmx: bool) -> None:
        """A whole page that could not be answered is a 400 that says why beside the field
        (core.htmx.render_page_or_fragment; a page position, which has no field, above
        the list). To htmx the fragment it swaps in says it (a 200, as htmx swaps only
        those, where the page is drawn from htmx at all)."""
        response = self.client.get(f"{url}?{query}", headers=HTMX if htmx else {})
        said = any(text in response.content for text in ERRORS_SAID)
        if response.status_code not in ((200, 400) if htmx else (400,)) or not said:
            what = f"{self.who}: {name} ?{query[:60]}{' (htmx)' if htmx else ''}"
            self.failures.append(f"{what}: {response.status_code}, no error said")


def sweep(
    s: Sweep,
    pages: dict[str, str],
    values: list[str],
    *,
    expect: dict[str, int] | None = None,
    alone: bool = False,
) -> set[str]:
    """Each page of `pages`: each of `values` in every parameter it reads at once, and
    with `alone`, the values a form lets through in one parameter at a time (rotated),
    and the pages that take no GET (405), which are returned."""
    form_only: set[str] = set()
    for name, url in pages.items():
        expected = (expect or {}).get(name)
        if alone and s.ask(name, url, "") == 405:
            form_only.add(name)  # an address for forms: no query is read
            continue
        params = params_of(name)
        reads = LIKE_PAGE.get(name, name) in FORMS.keys() | READ_BY_VIEW.keys()
        every_value = reads and name not in EXPORTS and name not in LIKE_PAGE
        for value in values if every_value else values[:FEW]:
            s.ask(name, url, "&".join(f"{p}={value}" for p in params), expect=expected)
        if alone and reads and name not in LIKE_PAGE:
            # A filter refused is said beside its field (a digit no field takes), in the
            # page and in the fragment htmx asks for.
            if name in FORMS and name not in EXPORTS:
                for htmx in (False, True):
                    s.refused(name, url, "&".join(f"{p}={quote('²')}" for p in params), htmx)
            for i, p in enumerate(params):
                value = LET_THROUGH[i % len(LET_THROUGH)]
                s.ask(name, url, f"{p}={quote(value, safe='')}")
            s.ask(name, url, "&".join(f"{p}=1&{p}=2" for p in params))
    return form_only


def test_every_page_answers_any_query_for_any_visitor(
    world: World,  # noqa: F811
    elsewhere: World,  # noqa: F811
    pages: dict[str, str],
    errors_logged: Errors,
    make_user,
) -> None:
    values = nasty(world, elsewhere)
    outsider = make_user(email="outsider@example.com", name="Outsider")
    Membership.objects.create(project=elsewhere.project, user=outsider)
    visitors: dict[str, User | None] = {
        "owner": world.ada,
        "owner asked to confirm": world.ada,
        "member": world.bob,
        "another project's member": outsider,
        "signed out": None,
    }
    sweeps = {}
    for who, person in visitors.items():
        client = Client(raise_request_exception=False)
        if person is not None:
            client = as_(person, sudo=who != "owner asked to confirm")
            client.raise_request_exception = False
        sweeps[who] = Sweep(who, client, errors_logged, world.key_secret)

    form_only = sweep(sweeps["owner"], pages, values, alone=True)
    pages = {n: u for n, u in pages.items() if n not in form_only}
    project_pages = {n: u for n, u in pages.items() if n in PROJECT_POLICY}
    account_pages = {n: u for n, u in pages.items() if n in ACCOUNT_POLICY}
    # The prompt keeps the address asked for, to go on to once the check passes.
    asks = {n for n, rule in (PROJECT_POLICY | ACCOUNT_POLICY).items() if "GET" in rule.sudo}
    confirm = {n: u for n, u in pages.items() if n in asks}
    sweep(sweeps["owner asked to confirm"], confirm, values[:FEW])
    # What a page reads, it reads after the check of who may see it.
    refused_member = {n: 403 for n in project_pages if PROJECT_POLICY[n].get == OWNER}
    sweep(sweeps["member"], project_pages, values[:2], expect=refused_member)
    # Another project's page is 404 (its id in a filter, or a cursor of its log, is
    # among the values above: each is an error beside its field or narrows to nothing).
    with_ids = {n: u for n, u in account_pages.items() if ACCOUNT_POLICY[n].args(world)}
    sweep(
        sweeps["another project's member"],
        project_pages | with_ids,
        values[:2],
        expect=dict.fromkeys(project_pages | with_ids, 404),
    )
    sweep(
        sweeps["signed out"],
        pages,
        values[:2],
        expect=dict.fromkeys(project_pages | account_pages, 302),
    )
    failures = [f for s in sweeps.values() for f in s.failures]
    assert failures == [], "\n".join(failures)
