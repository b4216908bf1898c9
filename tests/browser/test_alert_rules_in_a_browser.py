"""The alert rules page as a wide screen shows it: laid out like the project's other
settings forms, and leading back to Alerts the way the other sub-pages lead back."""

from __future__ import annotations

from playwright.sync_api import Page

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD


def test_the_alert_rules_fields_are_no_wider_than_the_other_settings_forms(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/")
    settings_field = page.locator("main input[name='name']").bounding_box()
    assert settings_field is not None
    page.goto(f"/projects/{project.slug}/alerts/rules/")

    numbers = page.locator("#rules-form input[inputmode='numeric']")
    assert numbers.count() > 1
    for number in numbers.all():
        width = (number.bounding_box() or {"width": 0})["width"]
        assert 0 < width <= settings_field["width"] + 1, (number.get_attribute("name"), width)
    # Each group's title stands inside its card, as a settings card's heading does, not
    # astride its top border.
    for group in page.locator("#rules-form fieldset.card").all():
        card, legend = group.bounding_box(), group.locator("legend").bounding_box()
        assert card is not None and legend is not None
        assert legend["y"] > card["y"], group.get_attribute("id")


def test_the_alert_rules_page_leads_back_to_alerts_as_a_keys_usage_page_leads_back(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    sign_in(page, "kim@example.com")
    look = "a => [getComputedStyle(a).color, getComputedStyle(a).fontSize]"

    page.goto(f"/projects/{project.slug}/settings/api-keys/{key.pk}/usage/")
    usage_back = page.get_by_role("link", name="← API keys")
    usage_look = usage_back.evaluate(look)

    page.goto(f"/projects/{project.slug}/alerts/rules/")
    back = page.get_by_role("link", name="← Alerts")
    assert back.evaluate(look) == usage_look
    link, heading = back.bounding_box(), page.locator("h1").bounding_box()
    assert link is not None and heading is not None
    assert link["y"] + link["height"] <= heading["y"]  # above the heading, not under the text
    back.click()
    page.wait_for_url(f"**/projects/{project.slug}/alerts/")
