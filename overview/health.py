"""What a project's front page answers: is anything wrong? Read from every app below.

Each figure is counted over its own rows (the usage overview's hourly roll-up for calls,
flags for alerts, keys for expiry and policy, the audit trail for sign-ins), so the page
agrees with the page each figure links to. Calls are those of the last 24 whole hours and
the current one, as on the usage overview's "Last 24 hours".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import (
    Count,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Sum,
    prefetch_related_objects,
)
from django.utils import timezone

from accounts.models import Membership, Project
from alerts.models import Flag
from apikeys.models import ApiKey
from audit.models import AuditEvent
from usage.models import Outcome, ProjectUsageHour
from usage.overview import TimeRange

EXPIRING_WITHIN = timedelta(days=7)
TOP = 5
REFUSED = (Outcome.AUTH_FAILURE, Outcome.REVOKED_KEY)


@dataclass(frozen=True, slots=True)
class Calls:
    """The front page's calls card: the project's calls of the last 24 hours by how they ended,
    from the hourly roll-up."""

    total: int = 0
    ok: int = 0
    refused: int = 0  # refused credentials or permissions, revoked or expired tokens
    client_errors: int = 0
    server_errors: int = 0


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """One of the TOP keys with the most calls in those 24 hours, and how many were refused."""

    key: ApiKey
    calls: int
    refused: int


@dataclass(frozen=True, slots=True)
class SignIn:
    """A member's newest sign-in (`at` None: none in the audit trail), shown to owners only."""

    email: str
    name: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class ProjectHealth:
    """Everything the project's front page shows, as project_health() reads it; each figure
    links to the page that lists it in full."""

    since: datetime
    calls: Calls
    open_alerts: int
    high_alerts: int
    recent_alerts: list[Flag]
    expiring_keys: list[ApiKey]
    out_of_policy_keys: list[ApiKey]  # the first ten
    out_of_policy_count: int
    active_keys: list[ActiveKey]
    sign_ins: list[SignIn] = field(default_factory=list)  # owners see them; empty otherwise

    @property
    def needs_a_look(self) -> int:
        """How many of the cards have something to act on."""
        return sum(
            [
                self.open_alerts > 0,
                bool(self.expiring_keys),
                bool(self.out_of_policy_keys),
                self.calls.refused > 0 or self.calls.server_errors > 0,
            ]
        )


def project_health(
    *, project: Project, with_sign_ins: bool, now: datetime | None = None
) -> ProjectHealth:
    now = now or timezone.now()
    last_day = TimeRange.last_hours(24, now=now, name="Last 24 hours")
    since = last_day.since
    hours = ProjectUsageHour.objects.filter(
        project=project, start__gte=since, start__lt=last_day.until
    )
    by_outcome = dict(hours.values_list("outcome").annotate(n=Sum("requests")).order_by())
    calls = Calls(
        total=sum(by_outcome.values()),
        ok=by_outcome.get(Outcome.OK, 0),
        refused=sum(by_outcome.get(o, 0) for o in REFUSED),
        client_errors=by_outcome.get(Outcome.CLIENT_ERROR, 0),
        server_errors=by_outcome.get(Outcome.SERVER_ERROR, 0),
    )
    busiest = list(
        hours.filter(api_key__isnull=False)
        .values("api_key_id")
        .annotate(n=Sum("requests"), refused=Sum("requests", filter=Q(outcome__in=REFUSED)))
        .order_by("-n", "api_key_id")[:TOP]
    )
    keys = ApiKey.objects.in_bulk([row["api_key_id"] for row in busiest])
    active_keys = [
        ActiveKey(keys[row["api_key_id"]], row["n"], row["refused"] or 0)
        for row in busiest
        if row["api_key_id"] in keys
    ]

    flags = Flag.objects.for_project(project).open()
    counted = flags.aggregate(n=Count("id"), high=Count("id", filter=Q(severity="high")))
    # Their keys are read once the alerts are picked: joined in, every open alert's key was
    # read (the whole key table hashed) before the sort cut them to TOP.
    recent = list(flags.most_pressing_first()[:TOP])
    prefetch_related_objects(recent, Prefetch("api_key", ApiKey.objects.with_refusals_since_end()))

    live = ApiKey.objects.for_project(project).active()
    expiring = list(
        live.filter(expires_at__lte=now + EXPIRING_WITHIN).order_by("expires_at", "id")[: TOP * 2]
    )
    policy = project.max_key_lifetime_days
    out_of_policy: list[ApiKey] = []
    out_of_policy_count = 0
    if policy is not None:
        for key in live.order_by("created_at", "id").only(
            "name", "hint", "created_at", "expires_at"
        ):
            if Project.lifetime_exceeds(policy, key.created_at, key.expires_at):
                out_of_policy_count += 1
                if len(out_of_policy) < TOP * 2:
                    out_of_policy.append(key)

    sign_ins: list[SignIn] = []
    if with_sign_ins:
        # Each member's newest sign-in, one step of the sign-ins' index (audit_sign_ins)
        # each: not every sign-in of theirs, nor (without the action in an index) the
        # whole audit trail of every project.
        newest = (
            AuditEvent.objects.filter(action="user.signed_in", actor=OuterRef("user_id"))
            .order_by("-created_at")
            .values("created_at")[:1]
        )
        members = (
            Membership.objects.filter(project=project)
            .select_related("user")
            .annotate(last_sign_in=Subquery(newest))
            .order_by("id")
        )
        sign_ins = sorted(
            (SignIn(m.user.email, m.user.name, m.last_sign_in) for m in members),
            key=lambda s: (s.at is None, -(s.at.timestamp() if s.at else 0), s.email),
        )[: TOP * 2]

    return ProjectHealth(
        since=since,
        calls=calls,
        open_alerts=counted["n"],
        high_alerts=counted["high"],
        recent_alerts=recent,
        expiring_keys=expiring,
        out_of_policy_keys=out_of_policy,
        out_of_policy_count=out_of_policy_count,
        active_keys=active_keys,
        sign_ins=sign_ins,
    )
