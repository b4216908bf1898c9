"""Customer text with a direction override (U+202E) or right-to-left letters in it, shown
in the dashboard: a user agent or path a client sent, a key's, token's or agent's name saved
before names refused such characters, an alert's summary that quotes them. Shown plain, an
override reversed the text after it in its cell (the address beside a user agent, the hint
beside a key's name). In the tables and lists, each is shown in a <bdi>, which isolates it:
whatever it holds stays inside it."""

from __future__ import annotations

import re
from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from alerts.models import Flag
from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage.writer import usage_write

RLO = "\u202e"
# Where the pages show customer text among their own: table cells, list items (the
# overview's), alert summaries, the key filter's options.
_CELLS = re.compile(r"<(td|li|option)\b[^>]*>.*?</\1>|<p class=\"flag-summary\">.*?</p>", re.DOTALL)
# <bdi>, or in an <option> (text only) FSI … PDI, its plain-text equivalent.
_ISOLATED = re.compile(r"<bdi>.*?</bdi>|\u2068[^\u2069]*\u2069", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _cells_unisolated(html: str) -> str:
    """The text of the page's cells outside every <bdi> and FSI … PDI (attributes are no
    text)."""
    cells = "\n".join(match.group() for match in _CELLS.finditer(html))
    return _TAG.sub("", _ISOLATED.sub("", cells))


def flag_saying(summary: str, *, key: ApiKey, now: datetime) -> Flag:
    """An open high alert on `key` whose summary is `summary`, as detection writes one."""
    return Flag.objects.create(
        project=key.project,
        api_key=key,
        kind=Flag.Kind.ENDED_TOKEN_USED,
        severity=Flag.Severity.HIGH,
        dedupe_key="x",
        summary=summary,
        first_seen=now,
        last_seen=now,
    )


def test_direction_overrides_in_customer_text_are_isolated_on_every_page_that_shows_it(
    signed_in, project, make_key
):
    key, _ = make_key(project, name="Prod")
    # Saved before names refused direction controls (core.validators): still in the table.
    type(key).objects.filter(pk=key.pk).update(name=f"Prod{RLO}dorp")
    now = timezone.now()
    usage_write(
        [
            usage_call(
                now,
                key=key,
                agent=f"agent{RLO}x",
                path=f"/v1/agents/a{RLO}b/invoke",
                user_agent=f"curl/8 {RLO}0.1 lrx",
            ),
            usage_call(now, key=key, user_agent=f"python {RLO}" + "long " * 10),
        ]
    )
    flag_saying(f"Revoked key “Prod{RLO}dorp” was used", key=key, now=now)
    pages = {
        "usage:project_calls": [project.slug],
        "usage:api_key_usage": [project.slug, key.pk],
        "usage:project_usage": [project.slug],
        "apikeys:api_key_list": [project.slug],
        "alerts:flag_list": [project.slug],
        "overview:project_overview": [project.slug],
    }
    for name, args in pages.items():
        response = signed_in.get(reverse(name, args=args))
        assert response.status_code == 200, name
        html = response.content.decode()
        assert RLO in "".join(m.group() for m in _CELLS.finditer(html)), name
        shown = _cells_unisolated(html)
        assert RLO not in shown, (name, shown[max(0, shown.find(RLO) - 300) : shown.find(RLO) + 50])


PDI = "\u2069"
# A pop-directional-isolate before the override: inside a <bdi> (or between FSI and PDI),
# it closes the isolate early, and the override after it reverses the rest of the line
# (seen in Chromium: "revoke <bdi>a PDI RLO XYZ</bdi> key ABC" reads "revoke aCBA yek ZYX").
ESCAPE = PDI + RLO
# Form fields hold the name to edit as it is (an input is a paragraph of its own); a
# <bdi> or FSI … PDI that holds no isolate control of its own is a closed isolate.
_FIELDS = re.compile(r"<input\b[^>]*>|<textarea\b[^>]*>.*?</textarea>", re.DOTALL)
_CLOSED = re.compile(r"<bdi>[^\u2066-\u2069]*?</bdi>|\u2068[^\u2066-\u2069]*\u2069", re.DOTALL)


def _unisolated(html: str) -> str:
    """The page, with what stands in a closed isolate or a form field taken out."""
    return _CLOSED.sub("", _FIELDS.sub("", html))


def _pages(slug: str, key: int, pat: int, call: str, webhook: int) -> list[tuple[str, bool]]:
    """Pages and panels (True: asked for by htmx) that show the customers' names."""
    p = f"/projects/{slug}"
    keys = f"{p}/settings/api-keys"
    return [
        (f"{p}/", False),
        (f"{keys}/", False),
        (f"{keys}/{key}/rename/", True),
        (f"{keys}/{key}/roll/", True),
        (f"{keys}/{key}/suspend/", True),
        (f"{keys}/{key}/revoke/", True),
        (f"{keys}/{key}/usage/", False),
        (f"{keys}/{key}/usage/addresses/", False),
        (f"{p}/usage/", False),
        (f"{p}/usage/?stack=key", False),
        (f"{p}/usage/calls/", False),
        (f"{p}/usage/calls/{call}/", False),
        (f"{p}/alerts/", False),
        (f"{p}/alerts/?key={key}", False),
        (f"{p}/alerts/rules/", False),
        (f"{p}/settings/", False),
        (f"{p}/settings/members/", False),
        (f"{p}/settings/client-tokens/", False),
        (f"{p}/settings/webhooks/", False),
        (f"{p}/settings/webhooks/{webhook}/", False),
        (f"{p}/settings/audit/", False),
        ("/account/tokens/", False),
        (f"/account/tokens/{pat}/rename/", True),
        (f"/account/tokens/{pat}/regenerate/", True),
        (f"/account/tokens/{pat}/networks/", True),
        (f"/account/tokens/{pat}/revoke/", True),
        (f"/account/tokens/{pat}/usage/", False),
        ("/account/audit/", False),
        ("/account/sessions/", False),
        ("/account/security/", False),
        ("/account/delete/", False),
        ("/account/notifications/", False),
    ]


def test_a_name_that_closes_an_isolate_is_isolated_wherever_a_page_shows_it(
    signed_in, user, project, make_key, make_user
):
    """Names saved before direction controls were refused (core.validators), each holding a
    PDI and an override, on every page and panel that shows them: in headings, buttons,
    captions, the page's <title>, confirmations and labels too, each stands in a <bdi> or
    between FSI and PDI, with no isolate control of its own left to close it early."""
    from accounts.models import Membership, Passkey, Project, SignedInSession, User
    from apikeys.models import PersonalAccessToken
    from apikeys.services import client_token_create, personal_token_create
    from webhooks.services import webhook_create

    key, _ = make_key(project, name="Prod")
    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    client_token_create(project=project, context={"u": 1}, api_key=key)
    other = make_user(email="bo@example.com", name="Bo")
    Membership.objects.create(project=project, user=other, role="owner")
    webhook, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/in",
        format="generic",
        min_severity="low",
        created_by=other,
    )
    Passkey.objects.create(
        user=user, credential_id="c1", public_key=b"k", user_handle=b"h", name="Phone"
    )
    SignedInSession.objects.create(user=user, session_key="s" * 40, user_agent=f"ua{ESCAPE}au")
    # Saved so before the validators refused it (update() skips them).
    ApiKey.objects.filter(pk=key.pk).update(
        name=f"Prod{ESCAPE}dorp",
        notes=f"note{ESCAPE}eton",
        suspended_at=timezone.now(),
        suspended_reason=f"why{ESCAPE}yhw",
    )
    PersonalAccessToken.objects.filter(pk=pat.pk).update(name=f"Laptop{ESCAPE}potpal")
    Project.objects.filter(pk=project.pk).update(name=f"Acme{ESCAPE}emca")
    User.objects.filter(pk__in=[user.pk, other.pk]).update(name=f"Ada{ESCAPE}ada")
    Passkey.objects.filter(user=user).update(name=f"Phone{ESCAPE}enohp")
    key.refresh_from_db()
    now = timezone.now()
    usage_write([usage_call(now, key=key, user_agent=f"curl{ESCAPE}lruc")])
    usage_write([usage_call(now, pat=pat, project=project)])
    flag_saying(f"Revoked key “Prod{ESCAPE}dorp” was used", key=key, now=now)
    from usage.models import UsageRecord

    call = UsageRecord.objects.filter(api_key=key).values_list("request_id", flat=True)[0]
    problems = []
    for path, htmx in _pages(project.slug, key.pk, pat.pk, call, webhook.pk):
        headers = {"HX-Request": "true"} if htmx else {}
        response = signed_in.get(path, headers=headers)
        if response.status_code != 200:
            problems.append(f"{path}: {response.status_code}")
            continue
        html = response.content.decode()
        shown = _unisolated(html)
        problems += [
            f"{path}: {shown[max(0, m.start() - 80) : m.start() + 10]!r}"
            for m in re.finditer(RLO, shown)
        ]
    assert problems == []
