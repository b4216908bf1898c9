"""The curl commands that /docs/api/ prints are run as printed: a reader copies them, so
each must be a request the API takes, once the reader has put in their own token, id and
project where the example names one."""

from __future__ import annotations

import html
import re
import shlex

import pytest
from django.test import Client

from accounts.services import project_set_allowed_origins
from apikeys.services import client_token_create
from tests.api.curl import curl_request
from tests.conftest import Api

EXAMPLE = re.compile(r'<pre class="code"[^>]*><code>(curl .*?)</code></pre>', re.S)


def printed_examples(client: Client) -> list[list[str]]:
    page = client.get("/docs/api/").content.decode()
    return [shlex.split(html.unescape(code).replace("\\\n", " ")) for code in EXAMPLE.findall(page)]


@pytest.fixture
def callers(api_key, admin: Api, project, user) -> dict[str, str]:
    """What a reader puts in for each placeholder of the examples, and the origin the
    preflights name allowed, as the client-token recipe's first step does."""
    project_set_allowed_origins(project=project, origins=["https://app.example.com"], by=user)
    key, secret = api_key
    client_token, token_secret = client_token_create(
        project=project, context={"userId": "u_123"}, api_key=key
    )
    return {
        "$REMINIX_API_KEY": str(secret),
        "$REMINIX_PAT": str(admin.token),
        "$CLIENT_TOKEN": str(token_secret),
        "key_123": f"key_{key.pk}",
        "ctok_0123456789abcdefABCD": client_token.public_id,
        "my-project": project.slug,
    }


def test_every_printed_example_is_a_request_the_api_takes(client, callers):
    examples = [curl_request(words, base="http://testserver") for words in printed_examples(client)]
    assert len(examples) > 20
    refused = []
    # Revocations last: the examples before them use the same key and client token.
    for method, path, headers, body in sorted(examples, key=lambda e: e[0] == "DELETE"):
        if path == "/v1/credentials/github-secret-scanning":
            continue  # GitHub calls it, signed; nobody copies this one
        for placeholder, value in callers.items():
            path = path.replace(placeholder, value)
            headers = {name: v.replace(placeholder, value) for name, v in headers.items()}
        response = Client().generic(
            method,
            path,
            body,
            content_type=headers.pop("Content-Type", "application/octet-stream"),
            headers=headers,
        )
        if response.status_code >= 400:
            refused.append((method, path, response.status_code, response.content[:200]))
    assert refused == [], "\n".join(map(str, refused))
