"""Writes for agents."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from accounts.models import Project
from agents.models import Agent
from core.invalidation import changed

STARTER_AGENT_NAME = "my-agent"


def agent_create_starter(*, project: Project) -> Agent:
    """The echo agent every new project starts with, so the docs' first curl works."""
    agent = Agent.objects.create(
        project=project,
        name=STARTER_AGENT_NAME,
        kind=Agent.Kind.ECHO,
        description="Answers with what it is given. Replace it with your own agent.",
    )
    changed(agent.change_identity)
    return agent


def agent_create_starter_for(sender: type, *, project: Project, **kwargs: Any) -> None:
    """On accounts' project_created: every new project starts with the echo agent."""
    agent_create_starter(project=project)


def agent_deploy(
    *, project: Project, name: str, kind: str, description: str, config: dict
) -> tuple[Agent, bool]:
    """Create or update the agent `name`. Returns it and whether it was created."""
    agent, created = Agent.objects.update_or_create(
        project=project,
        name=name,
        defaults={
            "kind": kind,
            "description": description,
            "config": config,
            "updated_at": timezone.now(),
        },
    )
    changed(agent.change_identity)
    return agent, created
