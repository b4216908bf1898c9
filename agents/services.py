"""Writes for agents."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import member_hold
from agents.models import Agent
from audit.log import audit_record
from core.invalidation import changed

STARTER_AGENT_NAME = "my-agent"


class TooManyAgents(Exception):
    """The project already has settings.MAX_AGENTS_PER_PROJECT agents."""


def agent_create_starter(*, project: Project) -> Agent:
    """The echo agent every new project starts with, so the docs' first curl works."""
    now = timezone.now()
    agent = Agent.objects.create(
        project=project,
        created_at=now,
        updated_at=now,
        name=STARTER_AGENT_NAME,
        kind=Agent.Kind.ECHO,
        description="Answers with what it is given. Replace it with your own agent.",
    )
    changed(agent.change_identity)
    return agent


def agent_create_starter_for(sender: type, *, project: Project, **kwargs: Any) -> None:
    """On accounts' project_created: every new project starts with the echo agent."""
    agent_create_starter(project=project)


@transaction.atomic
def agent_deploy(
    *,
    project: Project,
    name: str,
    kind: str,
    description: str,
    config: dict,
    by: User | None = None,
    via: str = "",
    ip: str | None = None,
) -> tuple[Agent, bool]:
    """Create or update the agent `name`. Returns it and whether it was created.

    Audited: what answers a project's calls changed, and which token changed it (`via`;
    `by`, the person, when it was a personal access token), so a key that deploys what it
    should not is found in the audit log as its calls are in the usage log.
    NoLongerAMember if `by` is no longer a member of the project (member_hold);
    TooManyAgents if `name` is new and the project has settings.MAX_AGENTS_PER_PROJECT."""
    if by is not None:
        member_hold(project=project, user=by)
    wanted = {"kind": kind, "description": description, "config": config}
    existing = Agent.objects.select_for_update().filter(project=project, name=name)
    before = existing.values(*wanted).first()
    if before is None:
        _agent_room_hold(project=project, name=name)
        # A deploy of the same name that held the project's row first may have made it
        # meanwhile: what this one changes is measured against that agent.
        before = existing.values(*wanted).first()
    now = timezone.now()
    # One moment for both times of a new agent: each taken apart, it was updated before
    # it was created.
    agent, created = Agent.objects.update_or_create(
        project=project,
        name=name,
        defaults={**wanted, "updated_at": now},
        create_defaults={**wanted, "created_at": now, "updated_at": now},
    )
    changed(agent.change_identity)
    audit_record(
        action="agent.created" if created else "agent.updated",
        actor=by,
        project=project,
        target=agent,
        ip=ip,
        metadata={
            "kind": kind,
            "changed": [
                field
                for field in wanted
                if before is None or not _same_json(before[field], wanted[field])
            ],
            "via": via,
        },
    )
    return agent, created


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: as Python's ==, except that a boolean is never a number (to
    Python True == 1 and False == 0.0, so a config turned from one to the other was
    audited as unchanged). Numbers compare by value: 1 and 1.0 are one JSON number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same_json(value, b[key]) for key, value in a.items())
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def _agent_room_hold(*, project: Project, name: str) -> None:
    """Room for the agent `name` in `project`, or TooManyAgents. Two new agents at once at
    one below the cap take turns on the project's row (FOR NO KEY UPDATE, as owners'
    changes do: no insert naming the project waits for it), so the second counts the first.
    The count leaves `name` out: made meanwhile by another deploy, it is only updated."""
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    most = settings.MAX_AGENTS_PER_PROJECT
    if Agent.objects.for_project(project).exclude(name=name).count() >= most:
        raise TooManyAgents(
            f"This project has {most:,} agents, the most it may have. Deploy to the name of "
            "an existing agent to replace it instead."
        )
