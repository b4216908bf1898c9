"""What every new API key or personal access token is held to, whoever asks for it (the
pages, /v1, createapikey): the longest lifetime, how many may work at once, what a name is,
which permissions and agent scope it may be given."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError

from accounts.models import Project, User
from apikeys.models import ALL_PERMISSIONS, ApiKey, PersonalAccessToken
from apikeys.scopes import AGENT_ACTIONS, parse_agent_names
from core.validators import no_secret, single_line, visible


class OutOfPolicy(ValueError):
    """The token would live longer than a project's lifetime policy allows."""


# The latest a new key or PAT may expire: ten years on (3660 days, leap days and a margin
# included). The one limit for every way an expiry is given: the dashboard's forms,
# /v1/api-keys, createapikey, and these services under them. A later one is a slip (year
# 9999 from a date picker, a day count with a digit too many) that makes a secret outlive
# everyone who knows it exists.
LONGEST_LIFETIME = timedelta(days=3660)


TOO_FAR = "An expiry can be at most ten years from now, by %(last)s (UTC)."


NOT_AHEAD = "An expiry must be later than now."


def expiry_within_limit(expires_at: datetime | None, *, now: datetime) -> None:
    """OutOfPolicy if a token expiring at `expires_at` (None: never) would outlive
    LONGEST_LIFETIME from `now`. What the services check for every caller; an expiry
    already past makes a token that has ended, which harms nobody."""
    last = now + LONGEST_LIFETIME
    if expires_at is not None and expires_at > last:
        raise OutOfPolicy(TOO_FAR % {"last": f"{last:%-d %b %Y}"})


def expiry_checked(expires_at: datetime | None, *, now: datetime) -> None:
    """OutOfPolicy unless `expires_at` is None (never) or later than `now` and within
    LONGEST_LIFETIME: what a person or a script asking for a new token is told, beside
    the field (the forms, the API, createapikey), before the services check the limit
    again."""
    if expires_at is not None and expires_at <= now:
        raise OutOfPolicy(NOT_AHEAD)
    expiry_within_limit(expires_at, now=now)


# The most working tokens (not revoked, not expired) a project's keys and a person's PATs
# may number. The key list and the PAT list show every working one on one page, the usage
# pages and exports name them, and nothing else bounds them: made by a script in a loop,
# they would make those pages unusable. Ended tokens do not count (their lists are paged).
MAX_WORKING_KEYS_PER_PROJECT = 100


MAX_WORKING_PATS_PER_PERSON = 50


class TooManyTokens(Exception):
    """The project has MAX_WORKING_KEYS_PER_PROJECT working keys, or the person
    MAX_WORKING_PATS_PER_PERSON working PATs. The message says so, and what to do."""


def too_many_keys_message() -> str:
    return (
        f"This project has {MAX_WORKING_KEYS_PER_PROJECT} working API keys, the most it may "
        "have. Revoke one it no longer needs first."
    )


def too_many_pats_message() -> str:
    return (
        f"You have {MAX_WORKING_PATS_PER_PERSON} working personal access tokens, the most a "
        "person may have. Revoke one you no longer need first."
    )


def working_keys_full(project: Project) -> bool:
    return ApiKey.objects.for_project(project).active().count() >= MAX_WORKING_KEYS_PER_PROJECT


def working_pats_full(user: User) -> bool:
    return PersonalAccessToken.objects.for_user(user).active().count() >= (
        MAX_WORKING_PATS_PER_PERSON
    )


def permissions_or_all(permissions: list[str] | None, *, extra: Sequence[str] = ()) -> list[str]:
    """The permissions a new key or PAT gets, in canonical order: all of them when none
    were named (None), else the ones named. An empty list is a mistake, not "all".
    `extra`: what this kind of token may also be given, only by naming it (a PAT's keys)."""
    if permissions is None:
        return list(ALL_PERMISSIONS)
    known = [*ALL_PERMISSIONS, *extra]
    unknown = set(permissions) - set(known)
    if unknown:
        raise ValueError(f"Unknown permissions: {', '.join(sorted(unknown))}")
    if not permissions:
        raise ValueError("A restricted token needs at least one permission.")
    return [p for p in known if p in permissions]


def agent_scope_checked(
    agent_names: list[str] | None, agent_actions: list[str] | None
) -> tuple[list[str], list[str]]:
    """The scope as stored, or ValueError: names as an agent's, actions known."""
    names, problems = parse_agent_names("\n".join(agent_names or []))
    if problems:
        raise ValueError(" ".join(problems))
    actions = list(dict.fromkeys(agent_actions or []))
    unknown = [a for a in actions if a not in AGENT_ACTIONS]
    if unknown:
        raise ValueError(f"Unknown agent actions: {', '.join(unknown)}")
    # Both actions named is no limit at all: stored as none, like every unscoped token.
    return names, ([] if set(actions) == set(AGENT_ACTIONS) else actions)


KEY_NAME_MAX = 100  # ApiKey.name's and PersonalAccessToken.name's max_length


def key_name_normal(name: str) -> str:
    """A key's (or PAT's) name as it is kept and compared: composed (NFC) and without
    surrounding space. “Café” typed with a combining accent is the same name as with é, in
    every list and in the constraint; kept as typed, the database would see two."""
    return unicodedata.normalize("NFC", name).strip()


def token_name_checked(name: str) -> str:
    """A key's or PAT's `name` as kept (key_name_normal), or ValidationError if it is not
    one line of visible text of 1 to KEY_NAME_MAX characters holding no token (composing
    can lengthen a name: क़ is kept as two characters). Checked by every service that names
    a key or PAT, so no caller skips it; the forms and the API say so beside their field
    first."""
    name = key_name_normal(name)
    # The length first: the token check reads a long non-ASCII text slowly (core.redact).
    if not name or len(name) > KEY_NAME_MAX:
        raise ValidationError(f"A name is 1 to {KEY_NAME_MAX} characters.", code="max_length")
    single_line(name)
    visible(name)
    no_secret(name)
    return name
