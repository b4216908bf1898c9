"""schemathesis calls every operation of /v1/openapi.json against a live server, each
generated request once with each kind of token (an API key, a client token minted
through POST /v1/client-tokens, a personal access token naming the project in X-Project).
No answer may be a 5xx, and every answer must be one the document describes: its status,
content type, headers and body.

The server is pytest-django's live_server, in this process, on the suite's database.
Generation is derandomized (a fixed seed, no example database), so every run, CI's
included, sends the same requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from accounts.models import Project, User
from accounts.services import project_set_allowed_origins
from api.openapi import openapi_document
from apikeys.models import ApiKey
from apikeys.services import personal_token_create

ORIGIN = "https://app.example.com"
# What must hold for every answer; the other checks schemathesis has are about behaviour
# the document does not promise.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "ignored_auth",
)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 10,
        "generation": {"deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    }
)
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


def _security(case: schemathesis.Case) -> list[dict[str, list[str]]]:
    """The operation's `security`: the tokens it takes ([] for none)."""
    security: list[dict[str, list[str]]] = case.operation.definition.raw["security"]
    return security


@dataclass(frozen=True)
class Credential:
    """A token of one kind, as the headers that carry it."""

    scheme: str  # its security scheme in the document
    headers: dict[str, str]

    def is_for(self, case: schemathesis.Case) -> bool:
        """Whether the operation takes this kind of token (its `security` names it)."""
        return any(self.scheme in option for option in _security(case))


@pytest.fixture
def base_url(live_server, transactional_db, settings) -> str:  # type: ignore[no-untyped-def]
    # Thousands of calls a minute from one token: a 429 would only hide what is behind it.
    settings.API_RATE_LIMIT_PER_MINUTE = 10**9
    url = str(live_server.url)
    # What schemathesis reads is what the live server serves.
    served = requests.get(f"{url}/v1/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(openapi_document()))
    return url


@pytest.fixture
def credentials(
    base_url: str, user: User, project: Project, api_key: tuple[ApiKey, str]
) -> list[Credential]:
    # The preflight's documented example origin is one this project allows.
    project_set_allowed_origins(project=project, origins=[ORIGIN], by=user)
    minted = requests.post(
        f"{base_url}/v1/client-tokens",
        json={"context": {"userId": "u_1"}, "serverContext": {"plan": "pro"}},
        headers={"Authorization": f"Bearer {api_key[1]}"},
        timeout=10,
    )
    assert minted.status_code == 201, minted.text
    _, pat = personal_token_create(user=user, name="schemathesis")
    return [
        Credential("apiKey", {"Authorization": f"Bearer {api_key[1]}"}),
        Credential("clientToken", {"Authorization": f"Bearer {minted.json()['token']}"}),
        Credential(
            "personalAccessToken",
            {"Authorization": f"Bearer {pat}", "X-Project": project.slug},
        ),
    ]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_described_and_none_is_a_server_error(
    case: schemathesis.Case, base_url: str, credentials: list[Credential]
) -> None:
    # The operation's own tokens (one, if it takes none: its answer cannot depend on it).
    own = [c for c in credentials if c.is_for(case)] or credentials[:1]
    # The coverage phase's hundreds of variations go once, with a token the operation takes;
    # the examples and the fuzzing go with every kind of token: one the operation does not
    # take must be refused in the envelope, whatever else the request holds.
    phase = case.meta.phase.name.value if case.meta else ""
    sent = own[:1] if phase == "coverage" else credentials if _security(case) else own
    for credential in sent:
        case.call_and_validate(base_url=base_url, headers=credential.headers)
