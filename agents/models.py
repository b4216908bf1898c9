"""Agents and their executions."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from accounts.models import Project

AGENT_NAME_PATTERN = r"^[A-Za-z0-9_-]+$"


class AgentQuerySet(models.QuerySet["Agent"]):
    def for_project(self, project: Project) -> AgentQuerySet:
        return self.filter(project=project)


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
            models.UniqueConstraint(fields=["project", "name"], name="agent_unique_name")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
