import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.email_verification import verification_url
from tests.accounts.test_invitations import invite
from tests.accounts.test_invitations import link_in as invitation_link

ROOT = Path(__file__).resolve().parents[2]


def test_pages_carry_an_enforced_csp_and_the_htmx_script_its_nonce(client, db):
    response = client.get(reverse("accounts:login"))
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "script-src 'self' 'nonce-" in policy
    assert "frame-ancestors 'none'" in policy
    html = response.content.decode()
    htmx_tag = re.search(r"<script[^>]*htmx[^>]*>", html).group(0)
    assert f'nonce="{nonce}"' in htmx_tag
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_no_page_loads_anything_from_another_origin(signed_in, project):
    html = signed_in.get(reverse("overview:project_overview", args=[project.slug])).content
    sources = re.findall(rb'(?:src|href)="(https?:)?//', html)
    assert sources == []


def test_framing_is_denied_and_signed_in_pages_are_never_stored(signed_in, project):
    response = signed_in.get(reverse("overview:project_overview", args=[project.slug]))
    assert response["X-Frame-Options"] == "DENY"
    assert "no-store" in response["Cache-Control"]


def test_pages_anyone_can_open_are_never_stored(
    signed_in, project, make_user, django_capture_on_commit_callbacks
):
    """An invitation's or a confirmation link's page names a person and a project to
    whoever opens it, signed in or not, under a URL that is itself the secret: a browser's
    disk or a shared cache must not keep it. Nor any page carrying the CSP nonce and a
    CSRF token, which a stored copy would hand out again."""
    with django_capture_on_commit_callbacks(execute=True):
        invite(signed_in, project, "newcomer@example.com")
    newcomer = make_user(email="late@example.com")
    verify_link = urlsplit(verification_url(newcomer, "new@example.com")).path
    pages = [
        invitation_link(mail.outbox[-1]),
        verify_link,
        reverse("accounts:signup"),
        reverse("accounts:password_reset"),
        reverse("api_docs:reference"),
        "/no-such-page/",
    ]
    anonymous = Client()
    for page in pages:
        response = anonymous.get(page)
        assert response.status_code in (200, 404), page
        assert "no-store" in response.get("Cache-Control", ""), page
    refused_host = anonymous.get(reverse("accounts:login"), HTTP_HOST="evil.example")
    assert refused_host.status_code == 400 and "no-store" in refused_host["Cache-Control"]


def test_pages_turn_off_the_browser_features_the_dashboard_never_uses(client, signed_in, project):
    """A script that got in anyway (a library, an extension's injection) may not reach the
    camera, the microphone, the location or a payment sheet, and no other origin may load
    a page as a resource. Passkeys, which the sign-in and Security pages use, stay ours."""
    pages = [
        signed_in.get(reverse("overview:project_overview", args=[project.slug])),
        signed_in.get(
            reverse("apikeys:api_key_create", args=[project.slug]), HTTP_HX_REQUEST="true"
        ),
        Client().get(reverse("accounts:login")),
        Client().get("/no-such-page/"),
    ]
    for response in pages:
        policy = dict(
            item.strip().split("=", 1) for item in response["Permissions-Policy"].split(",")
        )
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert policy[feature] == "()", feature
        assert policy["publickey-credentials-get"] == "(self)"
        assert policy["publickey-credentials-create"] == "(self)"
        assert response["Cross-Origin-Resource-Policy"] == "same-origin"


def production_env(**extra: str) -> dict[str, str]:
    # Only the machine's environment: none of what the test settings put into os.environ.
    test_only = ("DJANGO_", "DEBUG", "SECURE_", "SECRET_KEY", "TOKEN_HASH_KEY", "ALLOWED_HOSTS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(test_only)}
    env.update(
        DJANGO_SETTINGS_MODULE="reminix_dashboard.settings.base",
        DEBUG="false",
        SECRET_KEY="x" * 30 + "a-long-random-production-secret-key-value",
        TOKEN_HASH_KEY="y" * 40,
        ALLOWED_HOSTS="dashboard.example.com",
        DATABASE_URL="sqlite:////tmp/reminix-check-deploy.sqlite3",
        REDIS_URL="redis://127.0.0.1:6379/0",
        DASHBOARD_URL="https://dashboard.example.com",
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com:587",
        SECURITY_CONTACT="security@example.com",
        TRUSTED_PROXIES="10.0.0.0/8",
        DEFAULT_FROM_EMAIL="Reminix <no-reply@example.com>",
    )
    env.update(extra)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy --fail-level WARNING` under `env`, as `make check` runs it."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.same_on_every_database
def test_check_deploy_is_clean_under_the_documented_production_environment():
    result = check_deploy(production_env())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_production_counts_rate_limits_per_process():
    env = production_env()
    env.pop("REDIS_URL")
    result = check_deploy(env)
    assert result.returncode != 0
    assert "api.W001" in result.stdout + result.stderr


@pytest.mark.parametrize("url", [None, "http://dashboard.example.com", "https://localhost:8000"])
@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_links_in_mail_would_point_at_this_machine(url):
    env = production_env()
    if url is None:
        env.pop("DASHBOARD_URL")  # the default: http://127.0.0.1:8000
    else:
        env["DASHBOARD_URL"] = url
    result = check_deploy(env)
    assert result.returncode != 0
    assert "core.W001" in result.stdout + result.stderr


@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_the_proxy_in_front_is_not_named():
    """Production believes the TLS proxy's X-Forwarded-Proto, so one is in front; unless
    TRUSTED_PROXIES names it, every request comes from the proxy's address. Five wrong
    passwords from anyone then lock everyone out of signing in for 15 minutes, the
    sign-up and reset limits are the whole world's, and keys' allowed networks and the
    usage log see one address."""
    env = production_env()
    env.pop("TRUSTED_PROXIES")
    result = check_deploy(env)
    assert result.returncode != 0
    assert "core.W004" in result.stdout + result.stderr


@pytest.mark.parametrize("hosts", ["*", "dashboard.example.com,*"])
@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_any_host_header_is_accepted(hosts):
    """Django's host validation is the one guard on what a page builds from the Host
    header (the API reference's examples, the passkeys' relying party and origin when
    WEBAUTHN_RP_ID is not set, the next-page checks): `*` turns it off, and Django's
    own deploy checks say nothing."""
    result = check_deploy(production_env(ALLOWED_HOSTS=hosts))
    assert result.returncode != 0
    assert "core.W005" in result.stdout + result.stderr


@pytest.mark.parametrize("url", [None, "consolemail://"])
@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_production_mail_is_printed_to_the_servers_output(url):
    """The console backend writes every email whole to the server's output, which is its
    log: each password-reset, confirmation and invitation link, usable by whoever reads
    the log, and never delivered to the person it was for."""
    env = production_env()
    if url is None:
        env.pop("EMAIL_URL")  # the default: the console
    else:
        env["EMAIL_URL"] = url
    result = check_deploy(env)
    assert result.returncode != 0
    assert "core.W002" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "sender",
    [
        None,
        "ops@dashboard.local",
        "Reminix <no-reply@MAIL.TEST.>",
        "x@localhost",
        # Sent as no-reply@reminix.local: Django encodes the domain (IDNA maps fullwidth).
        "no-reply@reminix.\uff4c\uff4f\uff43\uff41\uff4c",
    ],
)
@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_mail_is_sent_from_a_domain_no_mail_comes_from(sender):
    """DEFAULT_FROM_EMAIL's default, no-reply@reminix.local, is a name no mail can come from
    (.local, like .localhost, .test and .invalid, is reserved: RFC 6761, 6762): a mail
    service refuses it or files it as spam, and each send that fails is only logged. The
    confirmation mail among them, without which nobody can create a key."""
    env = production_env()
    if sender is None:
        env.pop("DEFAULT_FROM_EMAIL")  # the default: Reminix <no-reply@reminix.local>
    else:
        env["DEFAULT_FROM_EMAIL"] = sender
    result = check_deploy(env)
    assert result.returncode != 0
    assert "core.W006" in result.stdout + result.stderr


@pytest.mark.parametrize("sender", ["no-reply@example.com.", "Reminix <no-reply@example.com.>"])
@pytest.mark.same_on_every_database
def test_check_deploy_warns_when_django_cannot_send_from_the_sender_at_all(sender):
    """A domain written with its root's dot passes the settings' check of the sender (an
    address with a domain), but Django refuses it ('Invalid address') at every send: the
    check dropped the dot and read example.com, a domain mail comes from."""
    env = production_env()
    env["DEFAULT_FROM_EMAIL"] = sender
    result = check_deploy(env)
    assert result.returncode != 0
    assert "core.W006" in result.stdout + result.stderr


@pytest.mark.same_on_every_database
def test_production_cookies_are_this_origins_alone_over_https():
    """`__Host-` cookies are set only by this very origin, over https, for the whole site:
    a sibling subdomain (or whoever is in the middle of one of its http pages) cannot
    plant a session or a CSRF token of its choosing here, which would sign the victim in
    as the attacker (keys they then create, secrets they paste, land in the attacker's
    project)."""
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_SECURE, "
            "s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_DOMAIN, s.CSRF_COOKIE_DOMAIN, "
            "s.SESSION_COOKIE_PATH, s.CSRF_COOKIE_PATH, s.SESSION_COOKIE_HTTPONLY)",
        ],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.stdout.split() == [
        "__Host-sessionid",
        "__Host-csrftoken",
        "True",
        "True",
        "None",
        "None",
        "/",
        "/",
        "True",
    ], shown.stderr


@pytest.mark.same_on_every_database
def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.same_on_every_database
def test_production_refuses_a_short_token_hash_key_or_one_equal_to_the_secret_key():
    for value in ("short", production_env()["SECRET_KEY"]):
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env=production_env(TOKEN_HASH_KEY=value),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0
        assert "TOKEN_HASH_KEY must be at least 32 characters" in result.stderr
