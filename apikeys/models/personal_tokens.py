"""Personal access tokens (`reminix_pat_`): PersonalAccessToken, a person's token for CLIs
and scripts, and its reads."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models

from accounts.models import Project, User
from apikeys.models.common import PermissionsMixin, Token, TokenQuerySet, token_json_checks
from apikeys.tokens import TokenKind
from core.validators import single_line


class PersonalAccessTokenQuerySet(TokenQuerySet["PersonalAccessToken"]):
    """Reads of personal access tokens: for_user() narrows to one person's, where their tokens
    page, a token's usage page and the limit on working tokens all start."""

    def for_user(self, user: User) -> PersonalAccessTokenQuerySet:
        return self.filter(user=user)


class PersonalAccessToken(PermissionsMixin, Token):
    """A person's token (`reminix_pat_…`) for CLIs and scripts. It acts as its user: on
    each call it reaches only the projects the user is a member of at that moment,
    narrowed to `projects` when the token was restricted to some."""

    kind = TokenKind.PERSONAL_ACCESS_TOKEN
    noun = "personal access token"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens"
    )
    name = models.CharField(max_length=100, validators=[single_line])
    permissions = models.JSONField(default=list)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    # Limited to `projects` when made. Kept apart from the list so that a restriction whose
    # projects are all deleted reaches nothing, not everything (fails closed).
    projects_restricted = models.BooleanField(default=False)
    expiry_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    # As ApiKey.allowed_networks: where the token may be used from; empty: anywhere.
    allowed_networks = models.JSONField(default=list, blank=True)
    # When its current secret, and the expiry that came with it, were given (null: never
    # regenerated, so when it was made).
    regenerated_at = models.DateTimeField(null=True, blank=True)

    objects = PersonalAccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = token_json_checks("pat", lists=("permissions", "allowed_networks"))

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    @property
    def lifetime_from(self) -> datetime:
        """Where a project's lifetime policy measures it from: regenerating gives it a new
        secret and a new expiry, checked against every policy then, as a new token's is."""
        return self.regenerated_at or self.created_at

    def outlives_policy_of(self, project: Project) -> bool:
        """Whether `project`'s lifetime policy refuses it (checked on each call there, for
        it and for the client tokens it minted there)."""
        days = project.max_pat_lifetime_days
        return Project.lifetime_exceeds(days, self.lifetime_from, self.expires_at)

    def reachable_projects(self) -> models.QuerySet[Project]:
        """The projects it reaches now: its owner's, narrowed to those it was limited to."""
        reach = Project.objects.for_user(self.user)
        if self.projects_restricted:
            reach = reach.filter(pk__in=self.projects.values("pk"))
        return reach
