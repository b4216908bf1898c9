"""What a crawler and a security researcher look for first: /robots.txt says the
dashboard is not for indexing, and /.well-known/security.txt (RFC 9116) says whom to tell
about a vulnerability, from SECURITY_CONTACT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.accounts.test_security_headers import check_deploy, production_env
from tests.core.test_settings_from_the_environment import start


def fields(text: str) -> list[tuple[str, str]]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]


def test_robots_txt_keeps_crawlers_to_the_api_reference(client, db):
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert fields(response.content.decode()) == [
        ("User-agent", "*"),
        ("Allow", "/docs/api/"),
        ("Disallow", "/"),
    ]


def test_security_txt_names_the_contact_and_an_expiry_within_a_year(client, db, settings):
    settings.SECURITY_CONTACT = ["mailto:security@example.com", "https://example.com/report"]
    settings.DASHBOARD_URL = "https://dashboard.example.com"
    response = client.get("/.well-known/security.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    found = fields(response.content.decode())
    assert [value for name, value in found if name == "Contact"] == [
        "mailto:security@example.com",
        "https://example.com/report",
    ]
    [expires] = [value for name, value in found if name == "Expires"]
    left = datetime.fromisoformat(expires) - datetime.now(UTC)
    assert timedelta(days=30) < left < timedelta(days=365)
    assert ("Canonical", "https://dashboard.example.com/.well-known/security.txt") in found


def test_without_a_contact_there_is_no_security_txt(client, db, settings):
    settings.SECURITY_CONTACT = []
    assert client.get("/.well-known/security.txt").status_code == 404


def test_an_address_alone_is_a_mailto_contact():
    result = start(SECURITY_CONTACT="security@example.com, https://example.com/security")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "value", ["", "security", "http://example.com/report", "mailto:", "ftp://x.example/"]
)
def test_a_contact_no_researcher_could_use_stops_the_process_at_start(value):
    result = start(SECURITY_CONTACT=value)
    assert result.returncode != 0
    assert "SECURITY_CONTACT" in result.stderr.strip().splitlines()[-1]


def test_check_deploy_warns_when_nobody_is_named_to_hear_of_a_vulnerability():
    env = production_env()
    env.pop("SECURITY_CONTACT", None)
    result = check_deploy(env)
    assert result.returncode != 0
    assert "core.W003" in result.stdout + result.stderr
