"""A key's name saved before names refused direction controls, holding a PDI (U+2069) and
an override (U+202E), as Chromium lays the page out: the text after the name reads in its
own order. Before, the PDI closed the <bdi> around the name and the override reversed
the rest of the line: 'Roll “Prod⁩‮dorp” reminix_sk_…' read with its closing quote and
hint backwards."""

from __future__ import annotations

from playwright.sync_api import Page

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD

# The characters of an element's text, in the order they stand on the screen (left to
# right), each found by its own range's box.
_VISUAL = """(selector) => { const root = document.querySelector(selector); const out = [];
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT); let node;
  while ((node = walk.nextNode())) { for (let i = 0; i < node.data.length; i++) {
    const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
    const box = range.getBoundingClientRect();
    if (box.width > 0) out.push([node.data[i], box.x]); } }
  out.sort((a, b) => a[1] - b[1]); return out.map(c => c[0]).join(""); }"""


def test_a_name_holding_a_pdi_and_an_override_reverses_nothing_after_it(
    page: Page, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Prod", created_by=user)
    ApiKey.objects.filter(pk=key.pk).update(name="Prod\u2069\u202edorp")
    sign_in(
        page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/{key.pk}/roll/"
    )
    shown = page.evaluate(_VISUAL, "#roll-title")
    assert shown.startswith("Roll “"), shown
    assert shown.endswith(f"” {key.hint}"), shown


def test_a_message_quoting_such_a_name_reads_in_its_own_order(page: Page, transactional_db):
    """A message built in Python ("“…” has no old secret that still works."): the text
    after the name, laid out by Chromium, reads as written."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Prod", created_by=user)
    ApiKey.objects.filter(pk=key.pk).update(name="Prod\u2069\u202edorp")
    sign_in(page, "kim@example.com")
    keys = f"/projects/{project.slug}/settings/api-keys/"
    page.goto(keys)
    csrf = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['x-csrftoken']")
    # Not followed: the list it leads to would show (and use up) the message unseen.
    ended = page.request.post(
        f"{keys}{key.pk}/roll/end/", headers={"x-csrftoken": csrf}, max_redirects=0
    )
    assert ended.status == 302, ended.status
    page.goto(keys)
    shown = page.evaluate(_VISUAL, "#messages .message")
    assert shown.startswith("“"), shown
    assert shown.endswith("” has no old secret that still works."), shown
