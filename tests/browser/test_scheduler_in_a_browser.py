"""Nobody runs a command: the scheduler that `make run` and `make serve` start beside the
web server finds a revoked key still being tried, and the alert appears in Chromium."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.servers import OWNER, PASSWORD, Browser, deployment, require_redis


def test_the_scheduler_raises_an_alert_for_a_revoked_key_with_no_manual_command(
    browser, tmp_path, prepared_deployment
):
    require_redis()
    with deployment(tmp_path, prepared_deployment) as deployed:
        server = deployed.serve(workers=1)
        deployed.ingest()
        deployed.scheduler(DETECTION_EVERY_SECONDS="2")

        person = Browser(server)
        person.sign_in()
        keys_page = f"/projects/{deployed.slug}/settings/api-keys/"
        page_html = person.get(keys_page).body.decode()
        row = re.search(r"/settings/api-keys/(\d+)/revoke/", page_html)
        assert row is not None
        revoke = f"{keys_page}{row.group(1)}/revoke/"
        assert person.post_form(revoke, revoke, {}).status in (200, 302)
        for _ in range(3):
            assert server.invoke(deployed.token).status == 401

        context = browser.new_context(base_url=f"http://127.0.0.1:{server.port}")
        page = context.new_page()
        page.goto("/account/login/")
        page.get_by_label("Email").fill(OWNER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        alerts = page.get_by_role("navigation", name="Project").get_by_role("link", name="Alerts")
        deadline = time.monotonic() + 30
        while "1" not in alerts.inner_text() and time.monotonic() < deadline:
            time.sleep(1)
            page.reload()
        alerts.click()
        expect(page.get_by_text("no longer works but is still being tried")).to_be_visible()
        context.close()
