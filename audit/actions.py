"""The actions the audit trail knows: each app registers its own, with how they read.

    # in an app's AppConfig.ready()
    register_group("api_keys", "API keys", prefix="api_key.", scopes=BOTH)
    register_actions(
        Action("api_key.created", "API key created", "success"),
        Action("api_key.revoked", "API key revoked", "danger"),
    )

audit_record() refuses an action nobody registered, so a typo cannot write an event that
no filter finds and no page labels. Groups are what the audit pages' filter offers, in the
order they were registered (the order of INSTALLED_APPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

type Scope = Literal["project", "user"]
type Tone = Literal["", "success", "warning", "danger"]

BOTH: frozenset[Scope] = frozenset({"project", "user"})
USER_ONLY: frozenset[Scope] = frozenset({"user"})


class UnknownAuditAction(LookupError):
    """An action no app registered: a programming error, never a user's."""


@dataclass(frozen=True, slots=True)
class Action:
    """One thing that can happen, as the audit pages show it."""

    name: str
    label: str
    tone: Tone = ""


@dataclass(frozen=True, slots=True)
class ActionGroup:
    """Actions that a filter offers as one choice: those whose name starts with `prefix`.
    `scopes`: on which page it is offered (a person's PATs belong to no project)."""

    key: str
    label: str
    prefix: str
    scopes: frozenset[Scope]


_actions: dict[str, Action] = {}
_groups: dict[str, ActionGroup] = {}


def register_group(key: str, label: str, *, prefix: str, scopes: frozenset[Scope]) -> None:
    _groups[key] = ActionGroup(key, label, prefix, scopes)


def register_actions(*actions: Action) -> None:
    for action in actions:
        if not any(action.name.startswith(group.prefix) for group in _groups.values()):
            raise UnknownAuditAction(f"{action.name}: register its group first.")
        _actions[action.name] = action


def action_named(name: str) -> Action:
    """The registered action called `name`; UnknownAuditAction if there is none."""
    try:
        return _actions[name]
    except KeyError:
        raise UnknownAuditAction(f"No app registered the audit action {name!r}.") from None


def action_label(name: str) -> str:
    """The human name of `name`. Events of an action no longer registered (written by an
    older release) still read sensibly: "Api key rotated"."""
    if name in _actions:
        return _actions[name].label
    return name.replace(".", " ").replace("_", " ").capitalize()


def action_tone(name: str) -> Tone:
    return _actions[name].tone if name in _actions else ""


def action_groups_for(scope: Scope) -> list[ActionGroup]:
    return [group for group in _groups.values() if scope in group.scopes]


def action_group(key: str) -> ActionGroup:
    return _groups[key]
