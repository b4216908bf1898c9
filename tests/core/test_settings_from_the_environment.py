"""Settings read from the environment: a value the process cannot use stops it at start,
with one line naming the variable and what it takes, never a traceback on a later
request (PostgreSQL refusing every connection, a 500 on every API call) or a job that
fails every night."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured

from reminix_dashboard.settings import environment
from scheduler.checks import usage_retention_is_an_age_prune_usage_takes
from tests.accounts.test_security_headers import ROOT, production_env

# Settings read in processes of their own, each on a database of its own (production_env).
pytestmark = pytest.mark.same_on_every_database


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the production settings under `env`, as every process does at start."""
    return subprocess.run(
        [sys.executable, "-c", "import reminix_dashboard.settings.base"],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # Accepted, then PostgreSQL refused every connection: a 503 on every request.
        ("DB_STATEMENT_TIMEOUT", "-5"),
        ("DB_LOCK_TIMEOUT", "99999999999999999999"),
        # Accepted, then every mail failed (a negative socket timeout is a ValueError).
        ("EMAIL_TIMEOUT", "-5"),
        # No mail would ever go (0), or a run's mail would never stop.
        ("MAIL_RUN_BUDGET_SECONDS", "0"),
        ("MAIL_RUN_BUDGET_SECONDS", "1e9"),
        # Accepted, then the ingest waited 31 years once it had caught up.
        ("USAGE_FLUSH_SECONDS", "1e9"),
        # Accepted, then the scheduler's next run of detection overflowed.
        ("DETECTION_EVERY_SECONDS", "99999999999999999999"),
        # Accepted, then every sign-in was locked out.
        ("AXES_FAILURE_LIMIT", "0"),
        # Accepted, then a 500 on every API call.
        ("REDIS_URL", "²"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,²"),
        # Accepted, then every mail failed at its send.
        ("DEFAULT_FROM_EMAIL", ""),
        ("DEFAULT_FROM_EMAIL", "Reminix"),
        # A bare ValueError naming no variable.
        ("CONN_MAX_AGE", ""),
        ("API_RATE_LIMIT_PER_MINUTE", "²"),
        # Accepted as "false": a typo, or `${SECURE_SSL_REDIRECT}` of an unset variable in
        # a compose file, silently turned off the https redirect or the HSTS preload.
        ("SECURE_SSL_REDIRECT", ""),
        ("SECURE_SSL_REDIRECT", "ture"),
        ("SECURE_HSTS_PRELOAD", "yes please"),
        ("WORK_AFTER_ANSWER", ""),
        ("DEBUG", "ture"),
        # Accepted, then every link in every mail (verification, resets, invitations,
        # alerts) pointed nowhere.
        ("DASHBOARD_URL", ""),
        ("DASHBOARD_URL", "dashboard.example.com"),
        ("DASHBOARD_URL", "https://"),
        # Read by urlsplit without its line break, which then went into every mail link.
        ("DASHBOARD_URL", "https://dashboard.example.com\n.evil.example"),
        # Accepted as the working directory: collectstatic wrote into the repository.
        ("STATIC_ROOT", ""),
        # Accepted as no host at all: with DEBUG off, every request was a 400.
        ("ALLOWED_HOSTS", ""),
        ("ALLOWED_HOSTS", " , "),
        # Accepted, never matched (a Host header is compared without scheme or port).
        ("ALLOWED_HOSTS", "https://dashboard.example.com"),
        ("ALLOWED_HOSTS", "dashboard.example.com:443"),
        # Accepted, then every form sent from the trusted origin failed its CSRF check.
        ("CSRF_TRUSTED_ORIGINS", ""),
        ("CSRF_TRUSTED_ORIGINS", "dashboard.example.com"),
        ("CSRF_TRUSTED_ORIGINS", "https://dashboard.example.com/account/"),
        # Accepted: this deployment's rate limits, markers and usage stream lost their
        # namespace in a Redis it shares, and mixed with another's.
        ("REDIS_KEY_PREFIX", ""),
        ("REDIS_KEY_PREFIX", "   "),
        # Accepted as "the request's", or as an RP ID or origin no browser ever matches:
        # every passkey sign-in failed.
        ("WEBAUTHN_RP_ID", ""),
        ("WEBAUTHN_RP_ID", "https://dashboard.example.com"),
        ("WEBAUTHN_RP_ID", "dashboard.example.com:443"),
        ("WEBAUTHN_ORIGINS", ""),
        ("WEBAUTHN_ORIGINS", "dashboard.example.com"),
        # Accepted, then every request failed at its connection: no database named, a
        # database of its own for every connection (SQLite in memory), no driver.
        ("DATABASE_URL", "postgres://"),
        ("DATABASE_URL", "postgres://reminix:pw@db.example.com:5432/"),
        ("DATABASE_URL", "sqlite://"),
        ("DATABASE_URL", "mysql://reminix:pw@db.example.com/reminix"),
        # Accepted, then every mail failed at its send: no server to send it to.
        ("EMAIL_URL", "smtp://"),
        ("EMAIL_URL", "smtp+tls://user:pw@:587"),
        # Accepted as a secret: blanks sign every session and hash every stored token.
        ("SECRET_KEY", " " * 50),
        ("TOKEN_HASH_KEY", " " * 40),
        ("SECRET_KEY_FALLBACKS", " , "),
        # The JSON form of the fallbacks: none listed, not a list of strings, a blank key.
        ("SECRET_KEY_FALLBACKS", "[]"),
        ("SECRET_KEY_FALLBACKS", '["an old key",'),
        ("SECRET_KEY_FALLBACKS", '["an old key", 1]'),
        ("SECRET_KEY_FALLBACKS", '["an old key", "  "]'),
        # Accepted as "not set": the operator meant something, and we cannot know what.
        ("REDIS_URL", ""),
        ("TRUSTED_PROXIES", ""),
        ("SECRET_SCANNING_PUBLIC_KEYS", ""),
        ("USAGE_RETENTION", ""),
        ("DATABASE_URL", ""),
        ("EMAIL_URL", ""),
        ("LOG_LEVEL", ""),
    ],
)
def test_a_value_the_process_cannot_use_stops_it_at_start_naming_the_variable(name, value):
    result = start(**{name: value})

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert name in last


def test_the_documented_values_start():
    result = start(
        DB_STATEMENT_TIMEOUT="0",
        USAGE_FLUSH_SECONDS="0.5",
        MAIL_RUN_BUDGET_SECONDS="12.5",
        API_RATE_LIMIT_PER_MINUTE="0",
        TRUSTED_PROXIES="10.0.0.0/8, 2001:db8::1",
        REDIS_URL="redis://127.0.0.1:6379/0",
        LOG_LEVEL="warning",
        DEFAULT_FROM_EMAIL="Reminix <no-reply@reminix.example>",
    )
    assert result.returncode == 0, result.stderr


def test_the_documented_hosts_origins_and_prefix_start():
    result = start(
        ALLOWED_HOSTS="dashboard.example.com, .example.org,127.0.0.1,[::1]",
        CSRF_TRUSTED_ORIGINS="https://dashboard.example.com,https://*.example.org,http://[::1]:8000",
        REDIS_KEY_PREFIX="acme-dashboard:",
        WEBAUTHN_RP_ID="dashboard.example.com",
        WEBAUTHN_ORIGINS="https://dashboard.example.com, https://login.example.com:8443",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSRF_TRUSTED_ORIGINS", "https://admin:s3cret-passw0rd@dashboard.example.com"),
        ("WEBAUTHN_ORIGINS", "https://admin:s3cret-passw0rd@dashboard.example.com"),
        ("DATABASE_URL", "postgres://reminix:s3cret-passw0rd@db.example.com:5432/"),
        ("EMAIL_URL", "smtp+tls://reminix:s3cret-passw0rd@:587"),
    ],
)
def test_a_value_with_a_password_is_refused_without_repeating_it(name, value):
    result = start(**{name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "s3cret" not in result.stderr


def test_the_documented_words_for_on_and_off_start():
    result = start(SECURE_SSL_REDIRECT="off", SECURE_HSTS_PRELOAD="True", WORK_AFTER_ANSWER="0")
    assert result.returncode == 0, result.stderr


def setting_under(name: str, **env: str) -> str:
    """The value the production settings give `name` under `env`."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import reminix_dashboard.settings.base as s; print(s.{name})",
        ],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_dashboard_url_written_with_a_closing_slash_makes_links_without_a_double_one():
    """Mail links are the address and a path: `https://d.example//account/verify/…`
    reached no page behind a server that does not merge slashes."""
    url = setting_under("DASHBOARD_URL", DASHBOARD_URL="https://dashboard.example.com/")
    assert url == "https://dashboard.example.com"


def test_the_old_secret_keys_a_rotation_keeps_are_read_from_the_environment():
    """The README rotates SECRET_KEY by moving the old one into SECRET_KEY_FALLBACKS (or
    every webhook endpoint's secret and URL, encrypted under it, is lost), but nothing read
    that variable: the settings had no fallbacks whatever the environment said, and an
    operator who followed the README lost the endpoints, every session and every reset
    link at once."""
    old, older = "o" * 30 + "-the-key-before-this-one", "p" * 30 + "-and-the-one-before-it"
    fallbacks = setting_under("SECRET_KEY_FALLBACKS", SECRET_KEY_FALLBACKS=f"{old}, {older}")
    assert fallbacks == repr([old, older])
    assert setting_under("SECRET_KEY_FALLBACKS") == "[]"


def test_any_key_that_served_as_secret_key_can_be_kept_as_a_fallback():
    """SECRET_KEY is taken exactly as given, but the fallbacks were split on commas and
    stripped: an old key with a comma in it, or spaces at its ends, could not be kept, and
    the webhook secrets and URLs encrypted under it were lost at the rotation. Written as a
    JSON list, each key is kept exactly as it was given."""
    keys = ["o" * 30 + ",with a comma", "  spaces at its ends  ", '[bracketed] "quoted" \\']
    fallbacks = setting_under("SECRET_KEY_FALLBACKS", SECRET_KEY_FALLBACKS=json.dumps(keys))
    assert fallbacks == repr(keys)
    spaced = setting_under("SECRET_KEY_FALLBACKS", SECRET_KEY_FALLBACKS=f"  {json.dumps(keys)}\n")
    assert spaced == repr(keys)


def test_a_fallbacks_list_the_settings_refuse_is_not_repeated_in_the_error():
    """The message names the variable and the form, never the keys: it goes to the log."""
    result = start(SECRET_KEY_FALLBACKS='["the-old-secret-key-itself", 1]')

    assert result.returncode != 0
    assert "SECRET_KEY_FALLBACKS" in result.stderr
    assert "the-old-secret-key-itself" not in result.stderr


def test_two_deployments_sharing_a_redis_under_their_own_prefixes_keep_their_own_counts():
    """REDIS_KEY_PREFIX namespaced the rate limits, markers and usage stream, but not the
    cache behind the throttles and the mail jobs' notes, whose keys name only a person's,
    a project's or a job's id: a staging and a production deployment on one Redis shared
    the second-factor and sudo guesses of user 5 and, for an hour after one told project
    5's owners of a reported key, kept the other from telling its own project 5's owners."""
    import secrets

    from tests.servers import require_redis

    require_redis()
    key = f"reported-mail:project:{secrets.token_hex(8)}"
    # As _tell_owners() asks (apikeys/reported.py); the key goes a minute later.
    told = f"from django.core.cache import cache; print(cache.add({key!r}, 1, timeout=60))"

    def tells(prefix: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", told],
            cwd=ROOT,
            env=production_env(
                REDIS_URL="redis://127.0.0.1:6379/14", REDIS_KEY_PREFIX=f"test:{prefix}:"
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    staging, production = secrets.token_hex(4), secrets.token_hex(4)
    assert tells(staging) == "True"
    assert tells(production) == "True"
    assert tells(staging) == "False"


def test_a_url_that_cannot_be_read_is_refused_without_repeating_its_password(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis//:s3cret-passw0rd@cache:6379")
    with pytest.raises(ImproperlyConfigured) as refused:
        environment.redis_url("REDIS_URL")
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("value", ["²", "-1", "7", "3d", "90 days", "1e3d"])
def test_a_retention_prune_usage_would_refuse_every_night_stops_the_scheduler_at_start(
    settings, value
):
    settings.USAGE_RETENTION = value
    (error,) = usage_retention_is_an_age_prune_usage_takes()
    assert isinstance(error, Error) and "USAGE_RETENTION" in error.msg


def test_the_default_retention_passes(settings):
    settings.USAGE_RETENTION = "90d"
    assert usage_retention_is_an_age_prune_usage_takes() == []


@pytest.mark.parametrize("command", ["check", "ingest_usage", "run_scheduler"])
def test_a_setting_it_cannot_use_stops_manage_py_with_one_line_not_a_traceback(command):
    """`make serve`'s first step, the ingest and the scheduler printed a 20-line traceback
    of the settings' import, the reason in its last line."""
    run = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env=production_env(CONN_MAX_AGE="abc"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        "CONN_MAX_AGE must be a whole number from 0 to 1000000 (default 60); it is 'abc'."
    ]


@pytest.mark.parametrize(
    "option",
    [
        ["--settings", "reminix_dashboard.settings.test"],
        ["--settings=reminix_dashboard.settings.test"],
    ],
)
def test_manage_py_reads_the_settings_its_settings_option_names(option):
    """Django's --settings, on every command: manage.py's own look at the settings, made
    before the command line was read, loaded the default module, and the option was then
    ignored without a word (`check --deploy --settings=...` checked other settings)."""
    run = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            "from django.conf import settings; print(settings.SETTINGS_MODULE)",
            *option,
        ],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "reminix_dashboard.settings.test"
