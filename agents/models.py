"""Agents and their executions."""

from __future__ import annotations

import secrets

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from accounts.models import Project
from core.json_type import json_type_check

# \Z, not $: "$" also matches before a trailing newline.
AGENT_NAME_PATTERN = r"^[A-Za-z0-9_-]+\Z"


class AgentQuerySet(models.QuerySet["Agent"]):
    """Reads of agents: for_project() is where GET /v1/agents and the per-project cap start;
    within_scope() narrows it to a token's agents."""

    def for_project(self, project: Project) -> AgentQuerySet:
        return self.filter(project=project)

    def within_scope(self, names: list[str] | None) -> AgentQuerySet:
        """Those a token scoped to the agents `names` may touch (None: every agent)."""
        return self if names is None else self.filter(name__in=names)


class Agent(models.Model):
    """A named agent in a project. The built-in `echo` kind answers with what it is given."""

    class Kind(models.TextChoices):
        ECHO = "echo", "Echo"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(
        max_length=64,
        validators=[RegexValidator(AGENT_NAME_PATTERN, "Use letters, digits, - and _ only.")],
    )
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.ECHO)
    description = models.CharField(max_length=500, blank=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = AgentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="agent_unique_name"),
            # PUT /v1/agents/{name} takes an object only (agents/migrations/0009).
            json_type_check(field="config", json_type="object", name="agent_config_is_object"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def change_identity(self) -> str:
        """How a change to this agent is announced to the API's workers (core.invalidation);
        the API's lookup of an agent by name (api.lookup.Resource) names it the same."""
        return f"{self._meta.label_lower}:{self.project_id}:{self.name}"


def execution_public_id() -> str:
    """An execution's id in the API: made when it runs, before its row is written, since
    rows are written after the answer (core/write_behind.py)."""
    return "exec_" + secrets.token_hex(12)


class ExecutionQuerySet(models.QuerySet["Execution"]):
    """Reads of executions: for_project() is where GET /v1/execution-logs starts; within_scope()
    and of_agent() narrow it to a token's agents and to one agent."""

    def for_project(self, project: Project) -> ExecutionQuerySet:
        return self.filter(project=project)

    def within_scope(self, names: list[str] | None) -> ExecutionQuerySet:
        """Runs of the agents a token scoped to `names` may touch (None: every agent)."""
        return self if names is None else self.filter(agent_name__in=names)

    def of_agent(self, name: str) -> ExecutionQuerySet:
        """Runs of the agent called `name` (deleted since or not)."""
        return self.filter(agent_name=name)


class Execution(models.Model):
    """One run of an agent: what it was given, what it answered, and who asked."""

    class Type(models.TextChoices):
        INVOKE = "invoke", "Invoke"
        CHAT = "chat", "Chat"

    class Status(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    # Executions from before ids were made at run time kept theirs: exec_<row id>.
    public_id = models.CharField(max_length=32, unique=True, default=execution_public_id)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="executions")
    agent = models.ForeignKey(
        Agent, null=True, on_delete=models.SET_NULL, related_name="executions"
    )
    agent_name = models.CharField(max_length=64)
    type = models.CharField(max_length=16, choices=Type.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    duration_us = models.PositiveIntegerField(default=0)
    input = models.JSONField(default=dict)
    output = models.JSONField(null=True)
    # The key that asked, by id only: executions are a log, not a link that keeps keys alive.
    api_key_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        # `input` is an object of what the agent was given, by part (agents/runtime.py);
        # `output` is whatever the agent answered, any JSON, and is not checked.
        constraints = [
            json_type_check(field="input", json_type="object", name="execution_input_is_object")
        ]
        indexes = [
            models.Index(fields=["project", "-id"], name="exec_project_newest"),
            # One agent's executions, newest first: the log filtered by an agent, or read
            # by a token scoped to agents, walks these instead of every execution of the
            # project newer than the page (agents/migrations/0005).
            models.Index(fields=["project", "agent_name", "-id"], name="exec_project_agent_newest"),
            # Executions older than the retention's cut-off, oldest first: what
            # prune_executions deletes, read along this instead of the whole table
            # (agents/retention.py, agents/migrations/0007).
            models.Index(fields=["created_at"], name="exec_created_at"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.agent_name} {self.status}"
