"""Values read from the environment, checked once, when the process starts.

django-environ turns a number it cannot read into a bare ValueError that names no
variable ("invalid literal for int() with base 10: ''"), and takes any number it can
read: a negative or huge timeout was accepted at start, then failed every database
connection (PostgreSQL refuses the session's statement_timeout), every mail or every job
at its first use, mid-request. A REDIS_URL or TRUSTED_PROXIES that cannot be read did the
same: a 500 on every API call. Each value here is checked against what its consumer
accepts and refused with ImproperlyConfigured naming the variable and what it takes.
A URL's value is never repeated in a message: it may hold a password.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,30}(?:\.[0-9]{1,30})?")


def _given(name: str) -> str | None:
    """The variable's value, stripped; None when it is not set. Set but empty is refused
    (a `NAME=` line, or `${NAME}` of an unset one in a compose file): the operator
    meant something, and we cannot know what."""
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ImproperlyConfigured(f"{name} is set but empty: unset it for its default.")
    return value


def _listed(name: str) -> list[str]:
    """The variable's comma-separated entries, stripped; [] when it is not set. Set but
    listing nothing (`NAME=`, `NAME=,`) is refused, as `_given` refuses an empty value."""
    if _given(name) is None:
        return []
    entries = [part.strip() for part in os.environ[name].split(",") if part.strip()]
    if not entries:
        raise ImproperlyConfigured(f"{name} is set but lists nothing: unset it for its default.")
    return entries


def secret(name: str) -> str:
    """A secret exactly as given (never stripped: a changed TOKEN_HASH_KEY would end every
    stored token), or "" when not set. One of blanks alone is refused, unrepeated: it
    passed as a secret, so sessions were signed, and every token hashed, with spaces."""
    value = os.environ.get(name)
    if value is None:
        return ""
    if not value.strip():
        raise ImproperlyConfigured(f"{name} is set but blank: set a long random value.")
    return value


def secrets_listed(name: str) -> list[str]:
    """Secrets (SECRET_KEY_FALLBACKS: the keys a rotation keeps for what they signed or
    encrypted), [] when not set: comma-separated with spaces around each dropped, or, for
    a value starting with `[`, a JSON list of strings each kept exactly as `secret` keeps
    one, so that any key that served as SECRET_KEY (a comma in it, spaces at its ends) can
    be kept. Set but listing none, a blank one, or a JSON list that does not read is
    refused, unrepeated, as an empty or blank `secret` is."""
    value = os.environ.get(name)
    if value is None or not value.lstrip().startswith("["):
        return _listed(name)
    try:
        listed = json.loads(value)
    except ValueError:
        listed = None
    if (
        not isinstance(listed, list)
        or not listed
        or not all(isinstance(one, str) and one.strip() for one in listed)
    ):
        raise ImproperlyConfigured(
            f'{name} starts with "[", so it must be a JSON list of the old keys, each a '
            'string that is not blank, e.g. ["the key before", "the one before it"].'
        )
    return listed


def text(name: str, *, default: str) -> str:
    """Any value but an empty one (checked by its consumer: USAGE_RETENTION by the
    scheduler's system check), or `default` when not set."""
    given = _given(name)
    return default if given is None else given


def whole_number(name: str, *, default: int, least: int, most: int) -> int:
    """A whole number (ASCII digits) from `least` to `most`, or `default` when not set."""
    given = _given(name)
    if given is None:
        return default
    if _WHOLE.fullmatch(given) and least <= int(given) <= most:
        return int(given)
    raise ImproperlyConfigured(
        f"{name} must be a whole number from {least} to {most} (default {default}); "
        f"it is {given!r}."
    )


def seconds(name: str, *, default: float, least: float, most: float) -> float:
    """A number of seconds, decimals allowed, from `least` to `most` (no NaN, no inf)."""
    given = _given(name)
    if given is None:
        return default
    if _DECIMAL.fullmatch(given) and least <= float(given) <= most:
        return float(given)
    raise ImproperlyConfigured(
        f"{name} must be a number of seconds from {least:g} to {most:g} (default "
        f"{default:g}); it is {given!r}."
    )


def redis_url(name: str) -> str:
    """A URL redis-py can connect to (redis://, rediss://, unix://), or "" when not set."""
    from redis.connection import parse_url

    given = _given(name)
    if given is None:
        return ""
    try:
        parse_url(given)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} is not a Redis URL: write redis://host:6379/0 (or rediss://, unix://)."
        ) from None
    return given


def networks(name: str) -> list[str]:
    """Comma-separated addresses or CIDR networks, each one readable; [] when not set."""
    given = _listed(name)
    for part in given:
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {part!r} is not an address or network (e.g. 10.0.0.0/8, ::1)."
            ) from None
    return given


def json_object_of_text(name: str) -> dict[str, str]:
    """A JSON object whose values are all strings, or {} when not set."""
    given = _given(name)
    if given is None:
        return {}
    try:
        value = json.loads(given)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ImproperlyConfigured(
            f'{name} must be a JSON object of strings, e.g. {{"identifier": "-----BEGIN '
            'PUBLIC KEY-----…"}.'
        )
    return value


def log_level(name: str, *, default: str) -> str:
    """One of logging's level names (DEBUG, INFO, WARNING, ERROR, CRITICAL)."""
    given = os.environ.get(name, default).strip().upper()
    if given not in logging.getLevelNamesMapping() or given == "NOTSET":
        raise ImproperlyConfigured(
            f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL; it is {given!r}."
        )
    return given


def mail_sender(name: str, *, default: str) -> str:
    """`Name <address>` or a bare address: the sender of every mail. An empty or address-
    less value passed the start, then every mail (resets, alerts, reminders) failed at its
    send: Django refuses "" outright, and a mail server refuses a sender with no @."""
    given = _given(name)
    if given is None:
        return default
    _, address = parseaddr(given)
    local, at, domain = address.rpartition("@")
    if not (at and local and domain) or "\n" in given or "\r" in given:
        raise ImproperlyConfigured(
            f"{name} must be an address, or a name and <address>, e.g. "
            f"Reminix <no-reply@example.com>; it is {given!r}."
        )
    return given


_TRUE = frozenset({"true", "on", "yes", "y", "1"})
_FALSE = frozenset({"false", "off", "no", "n", "0"})


def boolean(name: str, *, default: bool) -> bool:
    """true/on/yes/1 or false/off/no/0, in any case. django-environ reads every other word
    as false, so a typo or an empty `SECURE_SSL_REDIRECT=` turned the redirect off."""
    given = _given(name)
    if given is None:
        return default
    if given.lower() in _TRUE | _FALSE:
        return given.lower() in _TRUE
    raise ImproperlyConfigured(
        f"{name} must be true or false (default {str(default).lower()}); it is {given!r}."
    )


def public_url(name: str, *, default: str) -> str:
    """An http(s) address with a host, without a closing slash: every mail link is this
    followed by a path, so `https://d.example/` made `//account/…`, which no page answers."""
    given = _given(name)
    if given is None:
        return default
    try:
        parts = urlsplit(given)
        readable = (
            not _BLANK_OR_CONTROL.search(given)
            and parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.port != 0
            and "@" not in parts.netloc
        )
    except ValueError:  # a port out of range or not a number, a broken IPv6 literal
        readable = False
    if not readable or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"{name} must be the dashboard's public address, e.g. "
            "https://dashboard.example.com (no user name, password, query or fragment)."
        )
    return given.rstrip("/")


def contacts(name: str) -> list[str]:
    """security.txt's Contact lines (RFC 9116): `mailto:` addresses or https pages,
    comma-separated; an address alone is a `mailto:`. [] when not set. A researcher is
    sent there, so one that reaches nobody (no address, plain http) is refused."""
    found = []
    for entry in _listed(name):
        uri = entry if ":" in entry else f"mailto:{entry}"
        parts = urlsplit(uri)
        local, at, domain = parts.path.rpartition("@")
        reachable = not _BLANK_OR_CONTROL.search(uri) and (
            (parts.scheme == "mailto" and bool(at and local and domain))
            or (parts.scheme == "https" and bool(parts.hostname))
        )
        if not reachable:
            raise ImproperlyConfigured(
                f"{name} must list mailto: addresses or https pages, e.g. "
                f"security@example.com or https://example.com/security; {entry!r} is neither."
            )
        found.append(uri)
    return found


def directory(name: str, *, default: str) -> str:
    """A directory's path. An empty one read as the working directory."""
    given = _given(name)
    return default if given is None else given


_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.I)
_HOST_PATTERN = re.compile(rf"\*|\.?{_HOST_NAME.pattern}|\[[0-9a-f:.]+\]", re.I)
# Whitespace or a control character: urlsplit drops tabs and line breaks before it reads
# a URL, so it would pass a value whose line break then went into every mail link.
_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def _shown(part: str) -> str:
    """`part` in a message, unless it may hold a password (a URL's user part)."""
    return "its entry with an @ (not repeated here)" if "@" in part else repr(part)


def host_names(name: str, *, default: list[str]) -> list[str]:
    """Comma-separated host names as Django's ALLOWED_HOSTS takes them (`.example.com`
    for a domain and its subdomains, `[::1]`, `*`), or `default` when not set. Django
    compares each with the request's host without its port: `https://d.example` or
    `d.example:443` matched nothing, and `ALLOWED_HOSTS=` listed nothing, so with DEBUG
    off every request was a 400."""
    given = _listed(name)
    for part in given:
        if not _HOST_PATTERN.fullmatch(part):
            raise ImproperlyConfigured(
                f"{name}: {_shown(part)} is not a host name (e.g. dashboard.example.com, "
                ".example.com for it and its subdomains, 127.0.0.1, [::1]); no scheme, port "
                "or path."
            )
    return given or default


def host_name(name: str) -> str:
    """One host name without scheme or port (a WebAuthn relying party ID), or "" when
    not set. A browser never matches `https://d.example` or `d.example:443` as an RP ID:
    every passkey sign-in failed."""
    given = _given(name)
    if given is None:
        return ""
    if not _HOST_NAME.fullmatch(given):
        raise ImproperlyConfigured(
            f"{name} must be a host name, e.g. dashboard.example.com (no scheme, port or "
            f"path); it is {_shown(given)}."
        )
    return given


def _is_origin(part: str, *, wildcard: bool) -> bool:
    if _BLANK_OR_CONTROL.search(part):
        return False
    try:
        parts = urlsplit(part)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    host = parts.hostname or ""
    if wildcard and host.startswith("*."):
        host = host[2:]
    if ":" in host:  # an IPv6 literal, in brackets in the origin
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    elif not _HOST_NAME.fullmatch(host):
        return False
    return (
        parts.scheme in ("http", "https")
        and "@" not in parts.netloc
        and not (parts.path or parts.query or parts.fragment)
        and not part.endswith(("?", "#"))
    )


def origins(name: str, *, wildcard: bool = False) -> list[str]:
    """Comma-separated origins, `scheme://host[:port]` and nothing after, or [] when not
    set; `https://*.example.com` too when `wildcard` (Django's CSRF_TRUSTED_ORIGINS). A
    browser's Origin header is compared whole: an entry without its scheme, or with a
    path, matched nothing, so every form sent from it (or every passkey) was refused."""
    given = _listed(name)
    for part in given:
        if not _is_origin(part, wildcard=wildcard):
            example = "https://dashboard.example.com" + (
                ", or https://*.example.com for its subdomains" if wildcard else ""
            )
            raise ImproperlyConfigured(
                f"{name}: {_shown(part)} is not an origin: write the scheme and host (and a "
                f"port if not the scheme's), nothing after, e.g. {example}."
            )
    return given


def key_prefix(name: str, *, default: str) -> str:
    """A prefix for this deployment's Redis keys, as written (an edge space is kept, not
    cut: the keys already written under it would be lost), or `default` when not set. An
    empty one dropped the namespace: in a shared Redis, this deployment's rate limits,
    change markers and usage stream mixed with another's."""
    given = os.environ.get(name)
    if given is None:
        return default
    if not given.strip() or re.search(r"[\x00-\x1f\x7f]", given):
        raise ImproperlyConfigured(
            f"{name} must be a non-empty prefix without control characters (default "
            f"{default!r}); unset it for the default."
        )
    return given


_DATABASES = {"django.db.backends.postgresql", "django.db.backends.sqlite3"}
_SMTP = "django.core.mail.backends.smtp.EmailBackend"


def database_url(name: str, *, default: str) -> dict[str, Any]:
    """Django's DATABASES entry for a postgres:// URL naming a database, or a sqlite:///
    file; `default` when not set. django-environ took `postgres://` (no database named),
    `sqlite://` (in memory: an empty database for every connection) and engines with no
    driver here (mysql://): every request then failed at its connection."""
    given = _given(name)
    try:
        config = environ.Env.db_url_config(default if given is None else given)
        engine = config["ENGINE"]
    except (KeyError, ValueError, ImproperlyConfigured):
        engine = None
    if engine not in _DATABASES or config.get("NAME") in (None, "", ":memory:"):
        raise ImproperlyConfigured(
            f"{name} is not a database URL this dashboard can use: write "
            "postgres://user:password@host:5432/name (or sqlite:///path/to/file)."
        )
    return config


def mail_url(name: str, *, default: str) -> dict[str, Any]:
    """Django's EMAIL_* settings for a mail URL, `default` when not set. An smtp URL
    without a host (`smtp://`) was taken, then every mail failed at its send."""
    given = _given(name)
    try:
        config = environ.Env.email_url_config(default if given is None else given)
    except (KeyError, ValueError, ImproperlyConfigured):
        config = None
    if config is None or (config.get("EMAIL_BACKEND") == _SMTP and not config.get("EMAIL_HOST")):
        raise ImproperlyConfigured(
            f"{name} is not a mail URL this dashboard can use: write "
            "smtp+tls://user:password@host:587 (or consolemail://)."
        )
    return config
