"""The README's calls (Using the API, the client-token recipe, personal access tokens) and
the ones the dashboard's pages print, run as printed: a new customer copies them first,
so each must get the answer the text around it says, once the reader has put in their
own key, token and project."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import project_set_allowed_origins
from apikeys.services import personal_token_create
from tests.api.curl import curl_request

README = Path(__file__).resolve().parents[2] / "README.md"
BASE = "http://127.0.0.1:8000"


def readme_commands() -> list[str]:
    """Every shell command of the README's `sh` blocks from "Using the API" on that calls
    the API, continuation lines joined."""
    text = README.read_text()
    text = text[text.index("## Using the API") :]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [re.sub(r"^ {3}", "", line, flags=re.M) for line in blocks]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def request_of(command: str, base: str) -> tuple[str, str, dict[str, str], str]:
    return curl_request(shlex.split(command, comments=True), base=base)


def send(method: str, path: str, headers: dict[str, str], body: str):
    content_type = headers.pop("Content-Type", "application/octet-stream")
    return Client().generic(method, path, body, content_type=content_type, headers=headers)


@pytest.fixture
def placeholders(api_key, user, project) -> dict[str, str]:
    """What the reader puts in for each placeholder."""
    _, pat = personal_token_create(user=user, name="CLI", permissions=["agents", "read"])
    return {
        "reminix_sk_...": str(api_key[1]),
        "$REMINIX_API_KEY": str(api_key[1]),
        "reminix_pat_…": str(pat),
        "my-project": project.slug,
    }


def run(command: str, placeholders: dict[str, str], base: str = BASE):
    for placeholder, value in placeholders.items():
        command = command.replace(placeholder, value)
    return send(*request_of(command, base))


def test_the_readme_shows_the_calls_a_new_customer_makes():
    paths = [request_of(command, BASE)[1] for command in readme_commands()]
    assert paths == [
        "/v1/agents/my-agent/invoke",
        "/v1/client-tokens",
        "/v1/agents",
        "/v1/user/me",
    ]


def test_the_first_call_invokes_the_new_projects_echo_agent(placeholders):
    first = readme_commands()[0]
    answer = run(first, placeholders)
    assert answer.status_code == 200
    body = answer.json()
    assert body["output"] == "hello"
    assert set(body["execution"]) == {"id", "status", "durationMs"}


def test_the_recipes_client_token_is_minted_and_works_from_the_allowed_origin(
    placeholders, project, user
):
    """Step 1 allows the origin, step 2 is the README's curl with the answer it shows,
    step 3 is the page's fetch, and `GET /client/token` tells what the text says."""
    origin = "https://app.example.com"
    project_set_allowed_origins(project=project, origins=[origin], by=user)
    answer = run(readme_commands()[1], placeholders)
    assert answer.status_code == 201
    minted = answer.json()
    assert set(minted) == {"token", "id", "expiresAt"}
    assert minted["token"].startswith("reminix_ct_") and minted["id"].startswith("ctok_")

    bearer = {"Authorization": f"Bearer {minted['token']}", "Origin": origin}
    invoked = Client().post(
        "/client/agents/my-agent/invoke",
        json.dumps({"prompt": "hello"}),
        content_type="application/json",
        headers=bearer,
    )
    assert invoked.status_code == 200 and invoked.json()["output"] == "hello"
    assert invoked["Access-Control-Allow-Origin"] == origin
    told = Client().get("/client/token", headers=bearer).json()
    assert told == {
        "projectId": project.slug,
        "context": {"userId": "u_123"},
        "expiresAt": minted["expiresAt"],
    }

    ended = Client().delete(
        f"/v1/client-tokens/{minted['id']}",
        headers={"Authorization": f"Bearer {placeholders['$REMINIX_API_KEY']}"},
    )
    assert ended.status_code == 204
    assert Client().get("/client/token", headers=bearer).status_code == 401


def test_the_personal_access_token_calls_answer_as_printed(placeholders, project, user):
    agents, me = (run(command, placeholders) for command in readme_commands()[2:4])
    assert agents.status_code == 200
    assert [agent["name"] for agent in agents.json()["data"]] == ["my-agent"]
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert [p["slug"] for p in me.json()["projects"]] == [project.slug]


def page_commands(html: str) -> list[str]:
    return [
        code.replace("&quot;", '"').replace("&#x27;", "'").replace("\\\n", " ")
        for code in re.findall(r'<pre class="code"[^>]*><code>(curl .*?)</code></pre>', html, re.S)
    ]


def test_the_pages_calls_answer_as_printed(signed_in, project, placeholders):
    """The project's front page (before its first call) and the empty Client tokens page
    each print a curl a customer copies with their key put in."""
    overview = signed_in.get(reverse("overview:project_overview", args=[project.slug]))
    tokens = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug]))
    commands = page_commands(overview.content.decode()) + page_commands(tokens.content.decode())
    assert len(commands) == 2
    invoked, minted = (run(c, placeholders, base="http://testserver") for c in commands)
    assert invoked.status_code == 200 and invoked.json()["output"] == "hello"
    assert minted.status_code == 201 and minted.json()["token"].startswith("reminix_ct_")


def readme_pat_permissions() -> list[str]:
    """The permissions the README's Personal access tokens section tells the reader to tick
    for its calls (the form starts with none)."""
    text = README.read_text()
    section = text[text.index("### Personal access tokens") : text.index("### Writes and limits")]
    sentence = re.search(r"[Tt]ick ((?:`\w+`(?:, | and )?)+)", section)
    return re.findall(r"`(\w+)`", sentence.group(1)) if sentence else []


def test_a_pat_made_as_the_readme_says_answers_its_calls(api_key, user, project):
    """The PAT form starts from nothing; a reader who ticks only what the README names, and
    the project, must get the answers its calls promise."""
    _, pat = personal_token_create(
        user=user, name="CLI", permissions=readme_pat_permissions(), projects=[project]
    )
    reader = {"reminix_pat_…": str(pat), "my-project": project.slug}
    agents, me = (run(command, reader) for command in readme_commands()[2:4])
    assert agents.status_code == 200, agents.content
    assert me.status_code == 200, me.content
