"""A page on another origin calls the Client API with fetch() and a client token."""

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from accounts.forms import AllowedOriginsForm
from accounts.models import AllowedOrigin, Project
from accounts.services import project_set_allowed_origins, user_sign_up
from agents.models import Execution
from apikeys.services import api_key_create, client_token_create, client_token_revoke
from apikeys.tokens import TokenKind, token_generate
from tests.conftest import PASSWORD

README = Path(__file__).resolve().parents[2] / "README.md"

CALL = """async ([url, token]) => {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({prompt: "from the browser"}),
    });
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {blocked: String(error)};
  }
}"""


READ = """async ([url, token]) => {
  try {
    const headers = token ? {"Authorization": "Bearer " + token} : {};
    const response = await fetch(url, {headers});
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {blocked: String(error)};
  }
}"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"<!doctype html><title>customer app</title><p>customer app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def customer_site() -> Iterator[int]:
    """Another origin on loopback: the customer's web app."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    # shutdown() waits for the loop to look up: every 0.5 s by default, half a second
    # at the end of each test that had one.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_fetch_works_from_an_allowed_origin_and_is_blocked_from_another(
    page: Page, live_server, transactional_db, customer_site
):
    user = user_sign_up(email="web@example.com", password=PASSWORD, name="Web", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    _, token = client_token_create(project=project, api_key=key, context={"userId": "u_9"})
    allowed = f"http://127.0.0.1:{customer_site}"
    AllowedOrigin.objects.create(project=project, origin=allowed)
    url = f"{live_server.url}/client/agents/my-agent/invoke"

    page.goto(f"{allowed}/app")
    result = page.evaluate(CALL, [url, token])
    assert result.get("status") == 200, result
    assert result["body"]["output"] == "from the browser"

    # The same page served from an origin the project does not list.
    page.goto(f"http://localhost:{customer_site}/app")
    result = page.evaluate(CALL, [url, token])
    assert "blocked" in result, result
    assert "Failed to fetch" in result["blocked"]
    # Refused at the preflight: the agent ran once, for the allowed origin only.
    assert Execution.objects.filter(project=project).count() == 1


def test_a_page_on_an_allowed_origin_can_read_why_a_token_was_not_taken(
    page: Page, live_server, transactional_db, customer_site
):
    # The page must tell "mint a new token" from "the network is down": a refusal it
    # cannot read is only "Failed to fetch".
    user = user_sign_up(email="web@example.com", password=PASSWORD, name="Web", verified=True)
    project = Project.objects.for_user(user).get()
    _, api_key = api_key_create(project=project, name="Backend", created_by=user)
    allowed = f"http://127.0.0.1:{customer_site}"
    AllowedOrigin.objects.create(project=project, origin=allowed)
    url = f"{live_server.url}/client/token"
    made_up = token_generate(TokenKind.CLIENT_TOKEN)  # well formed, never minted

    page.goto(f"{allowed}/app")
    refusals = {
        "none": page.evaluate(READ, [url, ""]),
        "made up": page.evaluate(READ, [url, made_up]),
        "API key": page.evaluate(READ, [url, api_key]),
        "in the URL": page.evaluate(READ, [f"{url}?token={made_up}", made_up]),
    }

    codes = {
        name: (result.get("status"), result.get("body", {}).get("error", {}).get("code"))
        for name, result in refusals.items()
    }
    assert codes == {
        "none": (401, "missing_api_key"),
        "made up": (401, "invalid_api_key"),
        "API key": (403, "insufficient_permissions"),
        "in the URL": (401, "invalid_api_key"),
    }, refusals


def test_an_origin_typed_with_a_letter_idna_2003_changed_opens_that_origin_and_no_other(
    page: Page, live_server, transactional_db, customer_site
):
    # A browser writes "faß" as xn--fa-hia and "ς" as itself (UTS #46); IDNA 2003 made them
    # "fass" and "σ": the origin typed never worked, and another domain was let in instead.
    # Chromium resolves every *.localhost name to loopback itself.
    user = user_sign_up(email="web@example.com", password=PASSWORD, name="Web", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    _, token = client_token_create(project=project, api_key=key, context={})
    typed = [f"http://faß.localhost:{customer_site}", f"http://ελληνικός.localhost:{customer_site}"]
    form = AllowedOriginsForm(data={"origins": "\n".join(typed)})
    assert form.is_valid(), form.errors
    project_set_allowed_origins(project=project, origins=form.cleaned_data["origins"], by=user)
    url = f"{live_server.url}/client/token"

    answers = {}
    for host in ("faß", "ελληνικός", "fass", "ελληνικόσ"):
        page.goto(f"http://{host}.localhost:{customer_site}/app")
        answers[host] = page.evaluate(READ, [url, token]).get("status", "blocked")

    assert answers == {"faß": 200, "ελληνικός": 200, "fass": "blocked", "ελληνικόσ": "blocked"}


def test_a_page_on_an_allowed_origin_can_read_that_a_client_api_path_does_not_exist(
    page: Page, live_server, transactional_db, customer_site
):
    # A typo in the path was refused at the preflight: "Failed to fetch", as if the
    # network were down, instead of the 404 that names the path.
    user = user_sign_up(email="web@example.com", password=PASSWORD, name="Web", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    _, token = client_token_create(project=project, api_key=key, context={})
    allowed = f"http://127.0.0.1:{customer_site}"
    AllowedOrigin.objects.create(project=project, origin=allowed)

    page.goto(f"{allowed}/app")
    result = page.evaluate(CALL, [f"{live_server.url}/client/agent/my-agent/invoke", token])

    assert result.get("status") == 404, result
    assert result["body"]["error"]["code"] == "not_found"
    assert "/client/agent/my-agent/invoke" in result["body"]["error"]["message"]
    assert not Execution.objects.exists()


def readme_page_code() -> str:
    """The README's page code (the recipe's `js` block), as printed."""
    (block,) = re.findall(r"```js\n(.*?)```", README.read_text(), re.S)
    return re.sub(r"^ {3}", "", block, flags=re.M)


def test_the_readmes_page_code_runs_as_printed_and_says_why_a_token_was_refused(
    page: Page, live_server, transactional_db, customer_site
):
    user = user_sign_up(email="web@example.com", password=PASSWORD, name="Web", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    _, token = client_token_create(project=project, api_key=key, context={})
    revoked, ended = client_token_create(project=project, api_key=key, context={})
    client_token_revoke(client_token=revoked, by=user)
    allowed = f"http://127.0.0.1:{customer_site}"
    AllowedOrigin.objects.create(project=project, origin=allowed)
    code = readme_page_code().replace("https://reminix.example.com", live_server.url)
    run = f"""async (clientToken) => {{
      try {{
        {code}
        return {{answer}};
      }} catch (error) {{
        return {{thrown: String(error)}};
      }}
    }}"""

    page.goto(f"{allowed}/app")
    worked = page.evaluate(run, token)
    refused = page.evaluate(run, ended)

    assert worked.get("answer", {}).get("output") == "hello", worked
    assert refused.get("thrown", "").startswith("Error: expired_api_key: "), refused


def test_a_call_sent_with_cookies_is_not_shown_to_the_page(
    page: Page, live_server, transactional_db, customer_site
):
    # As the README says: the Client API never reads cookies, and never says it does.
    user = user_sign_up(email="web@example.com", password=PASSWORD, name="Web", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    _, token = client_token_create(project=project, api_key=key, context={})
    allowed = f"http://127.0.0.1:{customer_site}"
    AllowedOrigin.objects.create(project=project, origin=allowed)

    page.goto(f"{allowed}/app")
    result = page.evaluate(
        """async ([url, token]) => {
          try {
            const headers = {"Authorization": "Bearer " + token};
            const response = await fetch(url, {headers, credentials: "include"});
            return {status: response.status};
          } catch (error) {
            return {blocked: String(error)};
          }
        }""",
        [f"{live_server.url}/client/token", token],
    )

    assert "blocked" in result, result
