"""Writes for alerts. Each is one transaction with its audit event."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import member_hold, owner_hold
from alerts.models import AlertRules, Flag, KeyNetwork
from alerts.open_flags import add_or_open
from alerts.rules import SWITCHABLE, TUNABLES
from apikeys.models import ApiKey, ClientToken
from apikeys.services import token_networks_set
from audit.log import audit_record


@transaction.atomic
def flag_acknowledge(*, flag: Flag, by: User, ip: str | None = None) -> bool:
    """Mark `flag` as looked at by `by`. True if this call acknowledged it; False if
    someone already had (who and when are kept from the first). A new occurrence of the
    same finding afterwards opens a new flag. NoLongerAMember if `by` is no longer a
    member of its project (member_hold): an alert is not closed by someone removed."""
    member_hold(project=flag.project, user=by)
    changed = Flag.objects.filter(pk=flag.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=by
    )
    if changed:
        flag.refresh_from_db(fields=["acknowledged_at", "acknowledged_by"])
        audit_record(
            action="flag.acknowledged",
            actor=by,
            project=flag.project,
            target=flag,
            target_label=flag.summary[:200],
            ip=ip,
            metadata={"kind": flag.kind, "severity": flag.severity},
        )
    return bool(changed)


@transaction.atomic
def flags_acknowledge_for_key(
    *, project: Project, api_key: ApiKey, by: User, ip: str | None = None
) -> int:
    """Acknowledge every open alert of `api_key` by `by`, at once: a leaked key raises
    several (new networks, new agents, a spike, refusals), and once it is revoked each was
    acknowledged one click at a time. Each is recorded as flag_acknowledge records one, by
    `by`, with an audit event of its own that says it was one of all the key's (and whether
    the key was revoked by then). Returns how many this call acknowledged; alerts someone
    else acknowledged meanwhile keep their who and when. NoLongerAMember as
    flag_acknowledge."""
    member_hold(project=project, user=by)
    flags = list(
        Flag.objects.for_project(project)
        .open()
        .filter(api_key=api_key)
        .select_for_update()
        .only("pk", "kind", "severity", "summary", "project_id")
        .order_by("id")
    )
    if not flags:
        return 0
    now = timezone.now()
    Flag.objects.filter(pk__in=[f.pk for f in flags]).update(
        acknowledged_at=now, acknowledged_by=by
    )
    revoked = api_key.revoked_at is not None
    for flag in flags:
        audit_record(
            action="flag.acknowledged",
            actor=by,
            project=project,
            target=flag,
            target_label=flag.summary[:200],
            ip=ip,
            metadata={
                "kind": flag.kind,
                "severity": flag.severity,
                "all_of_key": True,
                "key_revoked": revoked,
            },
        )
    return len(flags)


class NotAboutANetwork(ValueError):
    """The alert is not about a key used from a network (nothing to call ours)."""


@transaction.atomic
def flag_network_ours(*, flag: Flag, by: User, ip: str | None = None) -> list[str]:
    """ "This network is ours", from an alert about one (Flag.network_in_question): a new
    network becomes one of the key's known networks, confirmed by `by`; the network of the
    address a key's allowlist refused most is added to that list, so calls from it work
    from the next one. One network per click, named on the button: the other refused
    addresses may be someone else's. The alert is acknowledged. Returns the networks.
    NoLongerAMember if `by` is no longer a member of its project (member_hold)."""
    member_hold(project=flag.project, user=by)
    api_key = flag.api_key
    network = flag.network_in_question()
    if api_key is None or network is None:
        raise NotAboutANetwork("This alert is not about a network a key was used from.")
    now = timezone.now()
    networks = [network]
    if flag.kind == Flag.Kind.BLOCKED_NETWORK:
        # The key's list as it is now, its row held until this commits (as
        # token_networks_set holds it): added to the copy read with the alert, the network
        # would put back one taken out meanwhile, or make a short list of one emptied.
        api_key = ApiKey.objects.select_for_update(no_key=True).get(pk=api_key.pk)
        if not api_key.allowed_networks:
            raise NotAboutANetwork(
                "The key has no allowed networks any more: it is used from any network."
            )
        token_networks_set(api_key, networks=[*api_key.allowed_networks, network], by=by, ip=ip)
    for network in networks:
        KeyNetwork.objects.update_or_create(
            api_key=api_key,
            network=network,
            defaults={"confirmed_at": now, "confirmed_by": by},
            create_defaults={
                "first_seen": flag.first_seen,
                "confirmed_at": now,
                "confirmed_by": by,
            },
        )
    audit_record(
        action="flag.network_ours",
        actor=by,
        project=flag.project,
        target=flag,
        target_label=flag.summary[:200],
        ip=ip,
        metadata={"networks": networks, "key": api_key.hint},
    )
    flag_acknowledge(flag=flag, by=by, ip=ip)
    return networks


def flag_found_in_public(
    *,
    project: Project,
    api_key: ApiKey | None,
    client_token: ClientToken | None,
    url: str,
    source: str,
    revoked: bool,
    already_ended: bool,
    seen_at: datetime,
) -> Flag:
    """A high alert: GitHub's secret scanning found the token in public. Another find
    of the same token while the alert is open adds to it. `revoked`: this find revoked
    it; `already_ended`: the secret found had stopped working before it (revoked,
    expired, or a rolled key's old secret past its overlap); neither: the project only
    reports."""
    token = api_key or client_token
    assert token is not None
    dedupe_key = (
        f"{project.pk}:{Flag.Kind.FOUND_IN_PUBLIC}:{api_key.pk if api_key else '-'}:"
        f"{client_token.pk if client_token else '-'}:"
    )
    what = f"Key “{api_key.name}” ({api_key.hint})" if api_key else f"Client token {token}"
    if revoked:
        outcome = "It was revoked."
    elif already_ended:
        outcome = "It had already stopped working."
    else:
        outcome = "It was not revoked (the project only reports)."
    summary = f"{what} was found in public by GitHub's secret scanning. {outcome}"[:300]
    evidence = {"url": url[:2000], "source": source, "revoked": revoked}

    def add_to_open() -> Flag | None:
        flag = Flag.objects.select_for_update().filter(dedupe_key=dedupe_key).open().first()
        if flag is not None:
            flag.occurrences = F("occurrences") + 1
            flag.last_seen = max(flag.last_seen, seen_at)
            flag.summary, flag.evidence = summary, {**flag.evidence, **evidence}
            flag.save(update_fields=["occurrences", "last_seen", "summary", "evidence"])
        return flag

    def open_new() -> Flag:
        return Flag.objects.create(
            project=project,
            api_key=api_key,
            client_token=client_token,
            kind=Flag.Kind.FOUND_IN_PUBLIC,
            severity=Flag.Severity.HIGH,
            dedupe_key=dedupe_key,
            summary=summary,
            evidence=evidence,
            first_seen=seen_at,
            last_seen=seen_at,
        )

    # Another of GitHub's posts (the token found in two places) may open it at the same
    # moment: add_or_open adds to that one.
    with transaction.atomic():
        return add_or_open(add_to_open, open_new)


@transaction.atomic
def alert_rules_set(
    *,
    project: Project,
    values: dict[str, int | None],
    off: list[str],
    by: User,
    ip: str | None = None,
) -> dict[str, list[object]]:
    """Store the project's own thresholds (None: the default) and the kinds turned off,
    audited with each change as [old, new]. Returns the changes; none, nothing written.
    Owners only (NotAnOwner)."""
    owner_hold(project=project, user=by)
    rules = AlertRules.objects.select_for_update().filter(project=project).first()
    rules = rules or AlertRules(project=project)  # stored only if something changes
    changes: dict[str, list[object]] = {}
    for tunable in TUNABLES:
        old, new = getattr(rules, tunable.name), values.get(tunable.name)
        if old != new:
            changes[tunable.name] = [old, new]
            setattr(rules, tunable.name, new)
    was_off = set(rules.off or [])
    now_off = [kind for kind in SWITCHABLE if kind in off]
    for kind in SWITCHABLE:
        if (kind in was_off) != (kind in now_off):
            changes[kind] = ["off" if kind in was_off else "on", "off" if kind in now_off else "on"]
    if not changes:
        return changes
    rules.off, rules.updated_at, rules.updated_by = now_off, timezone.now(), by
    rules.full_clean()
    rules.save()
    audit_record(
        action="alerts.rules_changed",
        actor=by,
        project=project,
        target=rules,
        target_label="Alert rules",
        ip=ip,
        metadata={"changes": changes},
    )
    return changes
