"""Every dashboard form that writes, found on the pages themselves (so a form added to a
page is swept with no change here), sent the nastiest values as each kind of visitor:
never a 500 nor an ERROR in the log, a token sent is never written back, and a form
refused keeps what the person typed in its other fields. The forms' own addresses that no
page shows (the role matrix's bodies) are swept too, and each form with odd headers (a
10,000-character or NUL User-Agent, an odd X-Forwarded-For, Content-Type or HX header).

tests/core/test_forms_take_odd_input.py sends each field of a fixed list of forms every
odd value, one at a time, as the owner; tests/core/test_get_pages_take_odd_queries.py
does for pages' queries what this file does for forms. A sweep of every field of every
form with ~20 values, as the owner, with and without htmx, was 4,700 requests (4 minutes
on SQLite, 18 on PostgreSQL) and found nothing that this sample would not: here each
form takes a few values in every field at once, and one odd field beside valid ones."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import quote

from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Passkey
from tests.accounts.test_role_matrix import (  # noqa: F401  # fixtures
    ACCOUNT_POLICY,
    PROJECT_POLICY,
    World,
    as_,
    elsewhere,
)
from tests.accounts.world import world  # noqa: F401  # fixture
from tests.conftest import HTMX
from tests.core.test_get_pages_take_odd_queries import (  # noqa: F401  # fixtures
    Errors,
    errors_logged,
    pages,
)

SURROGATE = "%ED%A0%80"  # a lone surrogate's UTF-8 bytes: no str holds it


class PostForms(HTMLParser):
    """The POST forms of a page: their action and each field's value as the page fills it."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.fields: dict[str, str] | None = None
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.fields = {} if a.get("method", "").lower() == "post" else None
            if self.fields is not None:
                self.forms.append((html.unescape(a.get("action", "")), self.fields))
        elif self.fields is not None and a.get("name") and tag in ("input", "textarea", "select"):
            name, kind = a["name"], a.get("type", "").lower()
            if kind == "submit" or (kind in ("checkbox", "radio") and name in self.fields):
                return
            self.fields[name] = a.get("value", "")
            self.select = name if tag == "select" else None
        elif tag == "option" and self.fields is not None and self.select:
            self.fields[self.select] = self.fields[self.select] or a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.fields = None


# Forms whose success ends what the sweep acts on or as (a key, a row the others name, a
# membership): sent last, in this order.
ENDS = ("/roll/", "/revoke/", "/disable/", "/remove/", "/delete/", "/transfer/", "/leave/")


def ends(action: str) -> int:
    return next((i + 1 for i, end in enumerate(ENDS) if end in action), 0)


def forms_to_sweep(
    world: World,  # noqa: F811
    pages: dict[str, str],  # noqa: F811
) -> dict[str, dict[str, str]]:
    """Every POST form's action and a valid-looking body: the pages' forms as the owner
    sees them, and the role matrix's bodies for what no page shows (or shows filled)."""
    owner = as_(world.ada)
    found: dict[str, dict[str, str]] = {}
    for url in pages.values():
        response = owner.get(url)
        if response.status_code != 200 or getattr(response, "streaming", False):
            continue
        parser = PostForms()
        parser.feed(response.content.decode())
        for action, fields in parser.forms:
            action = action.split("?")[0] or url
            if not action.startswith(("/account/logout/", "/account/confirm/")):
                found.setdefault(action, {}).update(fields)
    for name, rule in (PROJECT_POLICY | ACCOUNT_POLICY).items():
        if rule.post:
            kwargs = {**rule.args(world)}
            if name in PROJECT_POLICY:
                kwargs["slug"] = world.project.slug
            body = {k: v if isinstance(v, str) else str(v) for k, v in rule.body(world).items()}
            found.setdefault(reverse(name, kwargs=kwargs), {}).update(body)
    for fields in found.values():
        fields.pop("csrfmiddlewaretoken", None)
    return dict(sorted(found.items(), key=lambda item: ends(item[0])))


def nasty(world: World, elsewhere: World) -> list[str]:  # noqa: F811
    return [
        "x" * 10_000,
        world.key_secret,
        SURROGATE,
        "a\x00b",
        "²",
        "١٢",
        "１２",
        str(10**40),
        "-1",
        "9999-12-31",
        "10000-01-01",
        "a\r\nb",
        "\u202eevil\u202c",
        "",
        str(elsewhere.key.pk),
    ]


def encoded(body: dict[str, str]) -> str:
    return "&".join(
        f"{quote(k)}={v if v == SURROGATE else quote(v, safe='')}" for k, v in body.items()
    )


class Sweep:
    """Sends forms as one visitor and notes what went wrong, for one list."""

    def __init__(self, who: str, client: Client, errors: Errors, secret: str) -> None:
        self.who, self.client, self.errors, self.secret = who, client, errors, secret
        self.failures: list[str] = []

    def send(
        self,
        action: str,
        body: dict[str, str],
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/x-www-form-urlencoded",
        expect: int | None = None,
        kept: dict[str, str] | None = None,
    ) -> None:
        self.errors.records.clear()
        response = self.client.post(
            action, encoded(body), content_type=content_type, headers=headers or {}
        )
        page = b"" if getattr(response, "streaming", False) else response.content
        sent = ", ".join(f"{k}={v[:12]!r}" for k, v in body.items())[:120]
        what = f"{self.who}: {action} {sent} {headers or ''}"[:300]
        if response.status_code >= 500 or self.errors.records:
            logged = [r.getMessage()[:120] for r in self.errors.records]
            self.failures.append(f"{what}: {response.status_code} {logged}")
        went = response.get("Location", "") + response.get("HX-Redirect", "")
        if self.secret[12:].encode() in page or self.secret[12:] in went:
            self.failures.append(f"{what}: the token is written into the page or address")
        if expect is not None and response.status_code != expect:
            self.failures.append(f"{what}: {response.status_code}, not {expect}")
        if kept and b'class="errorlist' in page:
            lost = [k for k, v in kept.items() if html.escape(v).encode() not in page]
            if lost:
                self.failures.append(f"{what}: refused, and lost {lost}")


# What a person types, which a refused form shows again (not choices, ids or passwords).
NOT_TYPED = ("password", "form_id", "replacing", "page", "confirm", "code")


def typed(fields: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in fields.items()
        if len(v) > 2 and not any(word in k for word in NOT_TYPED) and not v.isdigit()
    }


HEADERS = {
    "User-Agent": ("x" * 10_000, "a\x00b"),
    "X-Forwarded-For": ("\x00", "1.2.3.4, evil, " + "9" * 5000),
    "HX-Current-URL": ("javascript:alert(1)\x00",),
    "Accept-Language": ("x" * 10_000,),
}
CONTENT_TYPES = ("text/plain", "multipart/form-data", "application/json", "x" * 10_000)


def test_every_form_takes_any_input_from_any_visitor(
    world: World,  # noqa: F811
    elsewhere: World,  # noqa: F811
    pages: dict[str, str],  # noqa: F811
    errors_logged: Errors,  # noqa: F811
    make_user,
) -> None:
    # The worlds' made-up passkeys, with ids that are base64url as real ones are.
    Passkey.objects.filter(pk=elsewhere.passkey.pk).update(credential_id="Y3JlZDI")
    forms = forms_to_sweep(world, pages)
    assert len(forms) >= 50, sorted(forms)
    values = nasty(world, elsewhere)
    outsider = make_user(email="outsider@example.com", name="Outsider")
    Membership.objects.create(project=elsewhere.project, user=outsider)

    def client_of(person) -> Client:  # type: ignore[no-untyped-def]
        client = as_(person) if person else Client()
        client.raise_request_exception = False
        return client

    owner = Sweep("owner", client_of(world.ada), errors_logged, world.key_secret)
    others = {
        "member": Sweep("member", client_of(world.bob), errors_logged, world.key_secret),
        "another project's member": Sweep(
            "another project's member", client_of(outsider), errors_logged, world.key_secret
        ),
        "signed out": Sweep("signed out", client_of(None), errors_logged, world.key_secret),
    }
    project_actions = [a for a in forms if a.startswith(f"/projects/{world.project.slug}/")]
    # The others first, while every row is there: a member is refused an owner's form or
    # may send it; another project's member is answered 404 and someone signed out is
    # sent to sign in, whatever the form holds.
    for i, action in enumerate(project_actions):
        odd = dict.fromkeys(forms[action] or {"x": ""}, values[i % 4])
        if not action.endswith(("/leave/", "/transfer/")):  # Bob would act, and go
            others["member"].send(action, odd)
        others["another project's member"].send(action, odd, expect=404)
        # A token in the address's query too: sign-in's `next` would write it into its page.
        others["signed out"].send(f"{action}?token={world.key_secret}", odd, expect=302)
    lasting = [action for action in forms if not ends(action)]
    # Asked to confirm who one is first: the prompt carries the form on in its page, a
    # token pasted into it too (the secret just shown, into the next field) but for this.
    stale = Sweep(
        "owner asked to confirm", as_(world.ada, sudo=False), errors_logged, world.key_secret
    )
    stale.client.raise_request_exception = False
    for action in lasting:
        pasted = dict.fromkeys(forms[action] or {"x": ""}, f"pasted {world.key_secret}")
        stale.send(action, pasted)
        stale.send(action, pasted, headers={**HTMX, "HX-Target": "key-panel"})
    for action in lasting[:: len(lasting) // 6]:
        for header, sent in HEADERS.items():
            for value in sent:
                owner.send(action, forms[action], headers={header: value})
        for content_type in CONTENT_TYPES:
            owner.send(action, forms[action], content_type=content_type)
    for i, (action, fields) in enumerate(forms.items()):
        fields = fields or {"x": ""}
        # Every field odd at once, a few values each, with and without htmx...
        for n in range(3):
            value = values[(i + n * 5) % len(values)]
            owner.send(action, dict.fromkeys(fields, value), headers=HTMX if n == 1 else None)
        # ...and one odd field among valid ones: what was typed in the others is kept.
        field = list(fields)[i % len(fields)]
        odd_one = {**fields, field: values[i % len(values)]}
        owner.send(action, odd_one, kept=typed({k: v for k, v in fields.items() if k != field}))
    failures = [f for s in (owner, stale, *others.values()) for f in s.failures]
    assert failures == [], "\n".join(failures)
