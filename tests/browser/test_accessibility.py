"""axe-core on every page of the dashboard, in the states people see them, at 1280 and 360
pixels wide: any violation fails the suite.

axe-core is vendored (tests/browser/vendor/axe.min.js, MPL-2.0, its licence beside it): one
file, the same in every run, nothing fetched. The pages' CSP allows only our own nonced
scripts, so these contexts bypass CSP to inject it; the pages themselves are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page

from accounts.invitations import invitation_send
from accounts.models import Project
from accounts.services import membership_add, membership_remove, user_sign_up
from alerts.detection import detect
from alerts.models import Flag
from apikeys.models import ApiKey
from apikeys.services import (
    api_key_create,
    client_token_create,
    personal_token_create,
)
from tests.conftest import PASSWORD, keys_at_their_widest, usage_call
from usage.writer import usage_write
from webhooks.services import webhook_create

# Markup and styles, which no database changes: CI runs the sweep once (.ci/run).
pytestmark = pytest.mark.same_on_every_database

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
SIZES = {"wide": (1280, 900), "narrow": (360, 740)}


def violations(page: Page) -> list[str]:
    # A context made by axe_context() has axe in every document already; another gets it now.
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(content=AXE)
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => {
                const where = v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ");
                return `${v.id} (${v.impact}): ${where}`;
            });
        }"""
    )
    return list(found)


def axe_context(browser: Browser, base_url: str, size: str) -> BrowserContext:
    """A context at one of SIZES whose every document has axe-core before its own scripts
    run: handed to Chromium once, not sent as a 650 kB script tag to each page checked
    (~0.3 s a page, a quarter of the sweep's time)."""
    width, height = SIZES[size]
    context = browser.new_context(
        base_url=base_url, viewport={"width": width, "height": height}, bypass_csp=True
    )
    context.add_init_script(script=AXE)
    context.set_default_timeout(10_000)
    return context


def wider_than_their_card(page: Page) -> list[str]:
    """Content running past its card's edge: the page need not scroll for it to be cut off
    (a table's last buttons, a long address in a list of facts)."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main .card"))
            .filter(c => c.getBoundingClientRect().width > 0 && c.scrollWidth > c.clientWidth + 1)
            .map(c => `content wider than its card by ${c.scrollWidth - c.clientWidth} px: `
              + (c.querySelector("h2, h3, caption") || c).textContent.trim().slice(0, 40))"""
    )
    return list(found)


def small_targets(page: Page) -> list[str]:
    """Controls under 24 x 24 px (WCAG 2.5.8), and a project tab strip that hides a tab."""
    found = page.evaluate(
        """() => {
            const small = Array.from(document.querySelectorAll(
                "header a, header summary, main a, main button, main summary, main select"))
              .filter(e => { const r = e.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && (r.height < 24 || r.width < 24)
                  && !e.closest("p, li, dd, pre, .prose"); })
              .map(e => { const r = e.getBoundingClientRect();
                return `tap target ${Math.round(r.width)}x${Math.round(r.height)}: `
                  + e.textContent.trim().slice(0, 30); });
            const tabs = document.querySelector(".tabs-inner");
            if (tabs && tabs.scrollWidth > tabs.clientWidth) small.push("the project tabs scroll");
            return small;
        }"""
    )
    return list(found)


def squeezed_cells(page: Page) -> list[str]:
    """At phone widths a table of cards shows each cell's label above it: a cell left
    narrower than its label (a rule written for the wide table, a column's width of 1%)
    breaks the label a letter a line ("C / A / L / L / S")."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main .table-cards td[data-label]"))
            .filter(td => td.getBoundingClientRect().width > 0)
            .filter(td => { const label = getComputedStyle(td, "::before");
              if (label.display !== "block") return false;
              const probe = document.createElement("span");
              probe.textContent = td.dataset.label;
              for (const p of ["font", "letterSpacing", "textTransform"]) probe.style[p] = label[p];
              probe.style.whiteSpace = "nowrap"; probe.style.position = "absolute";
              document.body.append(probe);
              const needs = probe.getBoundingClientRect().width; probe.remove();
              const s = getComputedStyle(td);
              const room = td.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
              return room + 1 < needs; })
            .map(td => `a cell narrower than its label: ${td.dataset.label} `
              + `(${Math.round(td.getBoundingClientRect().width)} px)`)"""
    )
    return list(found)


def gap_above_first_heading(page: Page) -> list[str]:
    """A card's heading starts at the card's top: an h3's margin (meant to part it from
    the text above it) left an empty band above the card's first line."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main .card > :first-child"))
            .filter(h => /^H[1-6]$/.test(h.tagName) && h.getBoundingClientRect().height > 0)
            .filter(h => parseFloat(getComputedStyle(h).marginTop) > 0)
            .map(h => `a gap above the card's heading: ${h.textContent.trim().slice(0, 40)}`)"""
    )
    return list(found)


def words_in_a_grid(page: Page) -> list[str]:
    """A sentence is laid out as one: in a grid (.field is one), each loose piece of text
    beside an element becomes a row of its own ("Only events by / ada@… / , under…")."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main *"))
            .filter(el => getComputedStyle(el).display.endsWith("grid")
              && Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())
              && el.children.length > 0)
            .map(el => `a sentence split into grid rows: ${el.textContent.trim().slice(0, 40)}`)"""
    )
    return list(found)


def uneven_gaps_between_cards(page: Page) -> list[str]:
    """Cards stacked one above the next stand 20 px apart on every page, as Settings' do: the
    alert rules' cards, a form's rows, stood 36 (a card's margin and the form's gap added)."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main .card"))
            .map(card => {
              let next = card.nextElementSibling;
              while (next && next.getBoundingClientRect().height === 0) {
                next = next.nextElementSibling;
              }
              return [card, next]; })
            .filter(([card, next]) => next && next.classList.contains("card")
              && next.getBoundingClientRect().top >= card.getBoundingClientRect().bottom)
            .map(([card, next]) => [card,
              Math.round(next.getBoundingClientRect().top - card.getBoundingClientRect().bottom)])
            .filter(([card, gap]) => gap !== 20)
            .map(([card, gap]) => `${gap} px between cards, not 20: `
              + (card.querySelector("h2, h3, legend") || card).textContent.trim().slice(0, 40))"""
    )
    return list(found)


def out_of_line_in_forms(page: Page) -> list[str]:
    """A form's legends and its rows of radios and checkboxes start where its fields do: a
    legend's 2 px of padding and a box's 4 or 5 px of margin (the browser's) set
    "Permissions" and "Full access" off the line of "Name" and its box above them."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main form")).flatMap(form => {
          const shown = e => e.getBoundingClientRect().width > 0;
          const fields = Array.from(form.querySelectorAll(
              ".field > input:not([type=radio]):not([type=checkbox]):not([type=hidden]), "
              + ".field > select, .field > textarea"))
            .filter(shown);
          if (!fields.length) return [];
          const edge = Math.min(...fields.map(e => e.getBoundingClientRect().left));
          const starts = [];
          for (const legend of form.querySelectorAll("legend")) {
            if (!shown(legend)) continue;
            const s = getComputedStyle(legend);
            starts.push([legend.textContent, legend.getBoundingClientRect().left
              + parseFloat(s.paddingLeft) + parseFloat(s.borderLeftWidth)]);
          }
          // A group of boxes (a fieldset's, a lone checkbox's field) starts where the fields do.
          const groups = new Map();
          for (const box of form.querySelectorAll("input[type=radio], input[type=checkbox]")) {
            if (!shown(box)) continue;
            const group = box.closest("fieldset:not(.card), .field") || box.parentElement;
            groups.set(group, [...(groups.get(group) || []), box]);
          }
          for (const [group, boxes] of groups) {
            starts.push([(group.querySelector("legend, label") || group).textContent,
              Math.min(...boxes.map(b => b.getBoundingClientRect().left))]);
          }
          return starts.filter(([, x]) => Math.abs(x - edge) > 1)
            .map(([text, x]) => `${Math.round(x - edge)} px in from the form's fields: `
              + text.trim().slice(0, 40));
        })"""
    )
    return list(found)


def fields_short_of_their_dialog(page: Page) -> list[str]:
    """In a dialog a form's fields reach across it, as its text does: the create forms kept
    the 560 px they have on a wide page, 36 px short of a 640 px dialog's right edge and
    off the line of the paragraph and the heading above them."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("dialog[open] .field > "
              + ":is(input:not([type=radio], [type=checkbox]), select, textarea)"))
            .filter(f => f.getBoundingClientRect().width > 0)
            .filter(f => { const panel = f.closest(".panel");
              const s = getComputedStyle(panel);
              const inside = panel.getBoundingClientRect().right - parseFloat(s.paddingRight)
                - parseFloat(s.borderRightWidth);
              return inside - f.getBoundingClientRect().right > 1; })
            .map(f => `a field short of its dialog's edge: ${f.name}`)"""
    )
    return list(found)


def panel_titles_off_size(page: Page) -> list[str]:
    """A panel's title (a dialog's: create, rename, roll, revoke, the one-time secret) is
    the same size whatever its heading level: the token page's, h2 where no h2 stands above
    them, were 10% larger than the key page's h3."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main .panel > :is(h2, h3):first-child"))
            .filter(h => getComputedStyle(h).fontSize !== "16px")
            .map(h => `a panel title of ${getComputedStyle(h).fontSize}, not 16px: `
              + h.textContent.trim().slice(0, 40))"""
    )
    return list(found)


def paragraphs_broken_by_a_block(page: Page) -> list[str]:
    """A <p> cannot hold a block (a <details>, a <div>): the parser ends the paragraph before
    it and makes an empty one of the </p>, so the sentence breaks in two, half of it out of
    the paragraph's style ("Last used" on a line, "5 minutes ago from …" below it)."""
    found = page.evaluate(
        """() => Array.from(document.querySelectorAll("main p:empty"))
            .filter(p => p.attributes.length === 0)
            .map(p => "a paragraph broken by a block: "
              + (p.previousSibling ? p.previousSibling.textContent.trim().slice(0, 40) : ""))"""
    )
    return list(found)


def open_details(page: Page) -> None:
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")


@pytest.fixture
def world(transactional_db) -> dict[str, object]:
    """A project as people use it: keys (one revoked and still tried, one kept to a
    network), calls, an alert, a client token, a PAT, a pending invitation and a webhook
    whose creator (with a long address) left."""
    user = user_sign_up(email="ada@example.com", password=PASSWORD, name="Ada", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Production", created_by=user)
    leaked, _ = api_key_create(project=project, name="Leaked", created_by=user)
    now = timezone.now()
    usage_write([usage_call(now - timedelta(minutes=m), key=key) for m in range(1, 40)])
    leaked.revoke(by=None)
    usage_write(
        [
            usage_call(
                now - timedelta(minutes=m), key=leaked, status=401, error_code="expired_api_key"
            )
            for m in range(1, 4)
        ]
    )
    detect(now=now + timedelta(minutes=1))
    # A second open alert on the leaked key: its cards offer to acknowledge both at once.
    Flag.objects.create(
        project=project,
        api_key=leaked,
        kind=Flag.Kind.NEW_NETWORK,
        severity=Flag.Severity.MEDIUM,
        dedupe_key=f"a11y-new-network:{leaked.pk}",
        summary="Key “Leaked” was used from 198.51.100.0/24, a network it had not used before.",
        evidence={"network": "198.51.100.0/24", "count": 1, "ips": ["198.51.100.7"]},
        first_seen=now - timedelta(minutes=30),
        last_seen=now - timedelta(minutes=30),
    )
    minted, _ = client_token_create(project=project, context={"user": "u1"}, api_key=key)
    # Used from a browser: the key's usage page lists it apart from the key's own addresses.
    usage_write([usage_call(now - timedelta(minutes=3), client_token=minted, ip="198.51.100.23")])
    pat, _ = personal_token_create(user=user, name="Laptop CLI", projects=[project])
    usage_write([usage_call(now - timedelta(minutes=2), pat=pat, project=project)])
    # A list longer than a page: its pager and its order are checked too.
    for n in range(25):
        api_key_create(project=project, name=f"Service {n:02d}", created_by=user)
    # One works from one network only: its row's badge opens to name it.
    ApiKey.objects.filter(project=project, name="Service 24").update(
        allowed_networks=["198.51.100.0/24"]
    )
    # The first page's rows at their widest: a key rolled whose old secret still works (its
    # row counts down to the old one's end), one suspended with a reason, one in its last days.
    keys_at_their_widest(project, user, expiring="Trial", expires_in=timedelta(days=3))
    invitation_send(project=project, email="kai@example.com", role="member", by=user)
    from usage.models import UsageRecord

    call = UsageRecord.objects.filter(project=project).values_list("request_id", flat=True)[0]
    leaver = user_sign_up(
        email="a.rather.long.address.for.a.leaver@subsidiary.example-company.com",
        password=PASSWORD,
        verified=True,
    )
    membership = membership_add(project=project, user=leaver, role="owner", by=user)
    webhook, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/reminix",
        format="generic",
        min_severity="low",
        created_by=leaver,
    )
    membership_remove(membership=membership, by=leaver)
    # A member whose role an owner changes: the outcome is said in the list, by the row.
    bo = user_sign_up(email="bo@example.com", password=PASSWORD, name="Bo", verified=True)
    membership_add(project=project, user=bo, role="member", by=user)
    return {
        "slug": project.slug,
        "key": key.pk,
        "call": call,
        "pat": pat.pk,
        "webhook": webhook.pk,
        "leaked": leaked.pk,
    }


def pages(
    slug: str, key: int, call: str, pat: int, webhook: int, leaked: int
) -> list[tuple[str, Callable[[Page], None] | None]]:
    """Every signed-in page, and the states of it that show more (panels, tables)."""

    def click(name: str) -> Callable[[Page], None]:
        def act(page: Page) -> None:
            page.get_by_role("link", name=name).first.click()
            page.wait_for_selector("#key-panel")

        act.__name__ = f"after clicking {name}"
        return act

    def ask(name: str) -> Callable[[Page], None]:
        def act(page: Page) -> None:
            page.get_by_role("button", name=name).first.click()
            page.wait_for_selector("dialog.confirm-dialog[open]")

        act.__name__ = f"asked to confirm {name}"
        return act

    def acknowledge(page: Page) -> None:
        page.get_by_role("button", name="Acknowledge").first.click()
        page.wait_for_selector("#ack-title")

    acknowledge.__name__ = "after acknowledging an alert"

    def by_person(page: Page) -> None:
        # The actor column's link: the log of one person, named above it in a sentence.
        page.goto(page.locator("a[href*='actor_id=']").first.get_attribute("href") or "")
        page.wait_for_selector(".field-person")

    by_person.__name__ = "filtered by a person"

    def change_role(page: Page) -> None:
        page.get_by_label("Role of bo@example.com").select_option("owner")
        page.get_by_role("button", name="Change role").click()
        page.wait_for_selector(".row-outcome #messages")

    change_role.__name__ = "its outcome said by the row"

    project = f"/projects/{slug}"
    return [
        (f"{project}/", None),
        (f"{project}/settings/api-keys/", None),
        (f"{project}/settings/api-keys/", click("Create API key")),
        (f"{project}/settings/api-keys/?sort=name&page=2", None),
        (f"{project}/settings/api-keys/{key}/usage/", open_details),
        (f"{project}/settings/api-keys/{key}/usage/?order=oldest&ip=203.0.113.0/24", None),
        (f"{project}/settings/api-keys/{key}/usage/?ip=203.0.113.7/24", None),  # its error
        (f"{project}/settings/api-keys/{key}/usage/addresses/", None),
        (f"{project}/settings/api-keys/{key}/usage/addresses/client-tokens/", None),
        (f"{project}/settings/api-keys/{leaked}/roll/", None),  # it ended: no form
        (f"{project}/usage/", open_details),
        (f"{project}/usage/?range=7d&stack=key", open_details),
        (f"{project}/usage/calls/", None),
        (f"{project}/usage/calls/?order=oldest", None),
        (f"{project}/usage/calls/{call}/", None),
        (f"{project}/alerts/", None),
        (f"{project}/alerts/", acknowledge),  # the list swapped in place
        (f"{project}/alerts/rules/", None),
        (f"{project}/settings/webhooks/", None),
        (f"{project}/settings/webhooks/", click("Add endpoint")),
        (f"{project}/settings/webhooks/{webhook}/", None),
        (f"{project}/settings/", None),
        (f"{project}/settings/members/", None),
        (f"{project}/settings/members/?q=ADA", None),  # a search and what it found
        (f"{project}/settings/members/?q=nobody", None),  # a search that found nobody
        (f"{project}/settings/members/", change_role),
        (f"{project}/settings/client-tokens/", None),
        (f"{project}/settings/client-tokens/", ask("Revoke ctok_")),
        (f"{project}/settings/audit/", None),
        (f"{project}/settings/audit/", by_person),
        (f"{project}/settings/audit/?target=apikey:{key}", None),
        ("/account/tokens/", None),
        ("/account/tokens/", click("Create token")),
        ("/account/tokens/", click("Regenerate Laptop CLI")),
        (f"/account/tokens/{pat}/usage/", None),
        ("/account/audit/", None),
        ("/account/sessions/", None),
        ("/account/security/", None),
        ("/account/email/", None),
        ("/account/delete/", None),
        ("/account/notifications/", None),
        ("/account/password/", None),
        ("/docs/api/", None),
        ("/account/logout/", None),  # opened as a page, it asks first
        (f"{project}/settings/members/leave/", None),  # a form-only address: the 405 page
        (f"{project}/no-such-page/", None),  # the 404 page
    ]


@pytest.mark.parametrize("size", SIZES)
def test_no_page_has_an_accessibility_violation(browser, live_server, world, size):
    context = axe_context(browser, live_server.url, size)
    page = context.new_page()
    problems: dict[str, list[str]] = {}
    for path in ("/account/login/", "/account/signup/", "/account/password/reset/"):
        page.goto(path)
        problems[f"{path} (signed out)"] = violations(page)
    page.goto("/account/login/")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/projects/{world['slug']}/")
    places = pages(
        str(world["slug"]),
        int(world["key"]),
        str(world["call"]),
        int(world["pat"]),
        int(world["webhook"]),
        int(world["leaked"]),
    )
    for path, act in places:
        page.goto(path)
        if act is not None:
            act(page)
        label = f"{path}{' (' + act.__name__ + ')' if act else ''}"
        problems[label] = (
            violations(page)
            + wider_than_their_card(page)
            + gap_above_first_heading(page)
            + words_in_a_grid(page)
            + uneven_gaps_between_cards(page)
            + out_of_line_in_forms(page)
            + fields_short_of_their_dialog(page)
            + panel_titles_off_size(page)
            + paragraphs_broken_by_a_block(page)
        )
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            problems[label].append(f"the page scrolls sideways by {overflow} px")
        if size == "narrow":
            problems[label] += small_targets(page) + squeezed_cells(page)
    context.close()
    found = {label: v for label, v in problems.items() if v}
    assert not found, "\n".join(f"{label}: {v}" for label, v in found.items())
