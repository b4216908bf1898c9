"""new_network (medium): a key succeeds from a /24 (IPv4) or /48 (IPv6) it has never used,
after its learning period; one open alert per key, high at NEW_NETWORKS_HIGH networks.
A key counts and learns at most NEW_NETWORKS_PER_RUN new networks in a run, those of its
learning period among them (told to nobody, they cost the same; its servers call again
within it, and a later run learns them): past them its calls are passed over (not counted,
not learnt) and its alert, if any, counts "or more". The batch in which it reaches them
has worked out the networks of all its calls already; from the next batch on (once its
alert is raised, if it has one to raise), they are not even worked out.
A key whose memory is full (KEY_NETWORKS_KEPT) says so in its alert, which is high: once
a person acknowledges that alert, networks past the memory are no longer reported, until
the key is rolled (`_told_full`).
`_firsts`, which learns what a key does for the first time and finds what is new past that
period, is the new-network grace's and switch's; new agents use it too."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from django.db.models import F, Q

from alerts.detection.flags import SUMMARY_LENGTH, _name_within, _names, _raise, _span
from alerts.detection.result import DetectionResult, _isolated
from alerts.detection.signs_together import _signs_together
from alerts.detection.thresholds import Rules
from alerts.learnt import learnt_before
from alerts.models import Flag, KeyNetwork, evidence_text, evidence_texts, is_count
from core.networks import network_around
from usage.models import Outcome

# The /24 (IPv4) or /48 (IPv6) that an address belongs to.
network_of = network_around

# Per (project, key): each value new to the key (a network, an agent), with its first call.
type Findings = dict[tuple[int, int], dict[str, dict[str, Any]]]


def _firsts(
    direct: list[dict[str, Any]],
    value: Callable[[dict[str, Any]], str],
    known: dict[int, set[str]],
    first_uses: dict[int, datetime],
    rules: Rules,
    *,
    most: Mapping[int, int] | None = None,
) -> tuple[list[tuple[int, str, datetime]], Findings, set[int]]:
    """What each key did for the first time in these calls (a network, an agent: `value`
    of a call), in the order they came: each (key, value, first seen), to be learnt; and,
    per (project, key), each new value's first call past the key's learning period (its
    first use and the new-network grace), to be told. `known` and `first_uses` are the
    keys' so far, and grow. Values are learnt while the kind is off, so turning it on
    flags only what is new from then on. `most`: per key, how many values it may learn,
    found or not (in its learning period, or with the kind off, they cost the same);
    past them its values not known are neither found nor learnt, and the keys that had
    one are the third thing returned."""
    learnt: list[tuple[int, str, datetime]] = []
    findings: Findings = defaultdict(dict)
    met: dict[int, int] = defaultdict(int)
    stopped: set[int] = set()
    passed: set[int] = set()
    for r in direct:
        key_id, when, seen = r["api_key_id"], r["created_at"], value(r)
        if seen in known[key_id]:
            continue
        if key_id in stopped:
            passed.add(key_id)
            continue
        first_use = first_uses.get(key_id, when)
        first_uses[key_id] = min(first_use, when)
        known[key_id].add(seen)
        learnt.append((key_id, seen, when))
        met[key_id] += 1
        if most is not None and met[key_id] >= most.get(key_id, met[key_id] + 1):
            stopped.add(key_id)
        project_rules = rules[r["project_id"]]
        if project_rules.on(Flag.Kind.NEW_NETWORK) and (
            when - first_use > project_rules.new_network_grace
        ):
            findings[(r["project_id"], key_id)][seen] = r
    return learnt, findings, passed


def _new_networks(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    direct = [
        r for r in rows
        if r["outcome"] == Outcome.OK and r["api_key_id"] and r["ip"] and not r["client_token_id"]
    ]  # fmt: skip
    if result.networks_unread:
        direct = _passing_over(direct, result)
    if not direct:
        return
    # Each call's network once: it is most of this check's time in a flood of calls from
    # new addresses.
    networks = {r["id"]: network_of(r["ip"]) for r in direct}
    key_ids = {r["api_key_id"] for r in direct}
    known, first_uses, held = learnt_before(
        KeyNetwork,
        owner="api_key_id",
        value="network",
        owner_ids=key_ids,
        values=set(networks.values()),
    )
    # At most NEW_NETWORKS_PER_RUN met by a key in the run, counting the batches before.
    room = {k: NEW_NETWORKS_PER_RUN - result.networks_found.get(k, 0) for k in key_ids}
    learnt, findings, passed = _firsts(
        direct, lambda r: networks[r["id"]], known, first_uses, rules, most=room
    )
    for key_id, _, _ in learnt:
        result.networks_found[key_id] = result.networks_found.get(key_id, 0) + 1
    learnt, unkept = _within_memory(learnt, held)
    KeyNetwork.objects.bulk_create(
        [KeyNetwork(api_key_id=k, network=n, first_seen=at) for k, n, at in learnt],
        ignore_conflicts=True,
    )
    findings, full = _past_memory(findings, unkept, result)
    names = _names({(p, k, None) for p, k in findings})
    for (project_id, key_id), firsts in findings.items():
        first, last = _span(list(firsts.values()))
        name = names.get((key_id, None), "A key")
        ips = [call["ip"] for call in firsts.values()]
        # Networks past the key's memory: not learnt, so found again by the next call
        # from one; an open alert may have counted them already.
        uncounted = sum((key_id, network) in unkept for network in firsts)
        # One alert per key while it is open, however many networks: a leaked key used
        # from hundreds of addresses is one incident, not hundreds of alerts.
        flag = _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.NEW_NETWORK,
            severity=Flag.Severity.MEDIUM,
            subject="",
            summary="",
            evidence={},
            seen_from=first,
            seen_to=last,
            occurrences=partial(_counted, len(firsts), uncounted),
            merge=partial(
                _new_networks_merge,
                name,
                list(firsts),
                ips,
                first,
                uncounted=uncounted,
                at_least=key_id in passed,
                memory_full=key_id in full,
            ),
        )
        if flag is not None:
            escalate = partial(_new_networks_escalate, flag, now)
            _isolated(f"severity of flag {flag.pk}", escalate, result)
            _signs_together(flag, result)
            if key_id in passed:
                result.networks_unread[key_id] = None  # its alert says "or more" already
            elif result.networks_found[key_id] >= NEW_NETWORKS_PER_RUN or uncounted:
                result.networks_unread[key_id] = flag.pk
    # Keys at the bound with no alert to tell (all in their learning period): passed over.
    for key_id in key_ids:
        if result.networks_found.get(key_id, 0) >= NEW_NETWORKS_PER_RUN:
            result.networks_unread.setdefault(key_id, None)


def _within_memory(
    learnt: list[tuple[int, str, datetime]], held: dict[int, int]
) -> tuple[list[tuple[int, str, datetime]], set[tuple[int, str]]]:
    """Of what the keys did first, what each has room for under KEY_NETWORKS_KEPT (each
    holding `held`), in the order it came; and (key, network) of the rest, not learnt."""
    room = {k: KEY_NETWORKS_KEPT - held.get(k, 0) for k, _, _ in learnt}
    kept, unkept = [], set()
    for key_id, network, at in learnt:
        if room[key_id] > 0:
            room[key_id] -= 1
            kept.append((key_id, network, at))
        else:
            unkept.add((key_id, network))
    return kept, unkept


def _past_memory(
    findings: Findings, unkept: set[tuple[int, str]], result: DetectionResult
) -> tuple[Findings, set[int]]:
    """`findings` without the networks past a full key's memory that a person was told of
    (_told_full), whose other calls the run then passes over (each is from a network it
    cannot learn either, or one it knows); and the full keys not yet told, whose alert
    says their memory is full."""
    full = {key_id for key_id, _ in unkept}
    quiet = _told_full(full) if full else set()
    for key_id in quiet:
        result.networks_unread.setdefault(key_id, None)
    kept: Findings = {}
    for (project_id, key_id), firsts in findings.items():
        if key_id in quiet:
            firsts = {n: call for n, call in firsts.items() if (key_id, n) not in unkept}
        if firsts:
            kept[(project_id, key_id)] = firsts
    return kept, full - quiet


def _told_full(key_ids: set[int]) -> set[int]:
    """Of `key_ids` (keys whose memory is full), those a person was told so: a new-network
    alert of theirs that said it (evidence "memory_full") was acknowledged since the key's
    secret was last rolled. Their networks past the memory are not reported again: a
    fleet past KEY_NETWORKS_KEPT networks calls from one it could not learn all day, and
    each acknowledgement was followed by a fresh alert at its next call. A roll is a new
    secret, of which a person is told once again: the one they acknowledged may be the
    one that leaked."""
    told = (
        Flag.objects.filter(
            kind=Flag.Kind.NEW_NETWORK,
            api_key_id__in=key_ids,
            acknowledged_at__isnull=False,
            evidence__has_key="memory_full",
        )
        .filter(Q(api_key__rolled_at__isnull=True) | Q(acknowledged_at__gt=F("api_key__rolled_at")))
        .values_list("api_key_id", flat=True)
    )
    return {key_id for key_id in told if key_id is not None}


def _passing_over(direct: list[dict[str, Any]], result: DetectionResult) -> list[dict[str, Any]]:
    """`direct` without the calls of the keys the run no longer reads the networks of;
    the first time a key's calls are passed over, its alert says its count is now a
    lower bound (a call passed over may have come from a network it never used)."""
    unread = result.networks_unread
    kept = [r for r in direct if r["api_key_id"] not in unread]
    passed = {r["api_key_id"] for r in direct} - {r["api_key_id"] for r in kept}
    for key_id in sorted(passed):
        flag_id = unread[key_id]
        if flag_id is not None:
            unread[key_id] = None
            _isolated(f"count of flag {flag_id}", partial(_count_at_least, flag_id), result)
    return kept


def _count_at_least(flag_id: int) -> None:
    """The key's new-network alert says "N or more" networks from now on."""
    flag = Flag.objects.select_for_update().filter(pk=flag_id).first()
    if flag is None or flag.evidence.get("at_least"):
        return
    name = _names({(flag.project_id, flag.api_key_id, None)}).get((flag.api_key_id, None), "A key")
    summary, flag.evidence = _new_networks_merge(
        name, [], [], flag.first_seen, flag.evidence, at_least=True
    )
    flag.summary = summary[:SUMMARY_LENGTH]
    flag.save(update_fields=["summary", "evidence"])


def _new_networks_escalate(flag: Flag, now: datetime) -> None:
    """One new network may be a new server; a key taken up in one network after another
    is likely leaked: its alert becomes high, so it is emailed (and sent to webhooks that
    take only high alerts). So does one that says the key's memory is full: once it is
    acknowledged, networks past that memory are no longer told, and someone must know.
    Raised as high now (created_at, from which both count their day): a medium alert
    left open for days was past that day when it became high, and neither the email nor
    a high-only webhook ever came."""
    if flag.severity == Flag.Severity.MEDIUM and (
        flag.evidence["count"] >= NEW_NETWORKS_HIGH or flag.evidence.get("memory_full")
    ):
        Flag.objects.filter(pk=flag.pk).update(severity=Flag.Severity.HIGH, created_at=now)


NETWORKS_LISTED = 20
# A key's open new-network alert becomes high (emailed) at this many new networks.
NEW_NETWORKS_HIGH = 5
# The most new networks a key counts and learns in a run: the call that finds one more is
# passed over (_firsts' `most`), and from the next batch on, once its alert is raised,
# the run stops working out its calls' networks. Working out and learning a network is
# most of this check's cost per call: a flood of 200,000 calls from new /48s on one key
# took a run 43 s, and every project's calls logged after the flood's waited for it.
# Past a thousand new networks in a run, more change nothing the alert says but its
# count, which then says "or more"; the next run reads the key's networks again. (The
# bound was checked after each batch of BATCH_SIZE rows, so a flood's first batch was
# counted and learnt whole: 9,757 networks for a bound of 1,000.) A key's networks in its
# learning period, or while the check is off, count too: they were learnt without bound,
# a flood in its first day worked out and learnt whole, batch after batch.
NEW_NETWORKS_PER_RUN = 1_000
# The most networks a key learns (KeyNetwork rows). A flood from new networks once left
# 200,000 rows on one key. Past them it learns no more rather than forget some: its
# first networks are its servers', and forgetting the least recently seen would let a
# flood push them out (then called new on their next call) and keep the flood's own as
# known. A network past them stays new, so the key's alert still says it was used from
# where it never was; the run stops reading the key's networks once its alert has them
# (as at NEW_NETWORKS_PER_RUN). That alert says the memory is full, and is high (emailed):
# once it is acknowledged, networks past the memory raise nothing until the key is
# rolled, since every call from one would otherwise alert again (_told_full). A person's
# "this network is ours" is learnt regardless.
KEY_NETWORKS_KEPT = 10_000


def _counted(found: int, uncounted: int, old: dict[str, Any]) -> int:
    """The networks an alert counts of `found`, its occurrences ("× N" on the Alerts page):
    as _new_networks_merge counts them, so that the two say the same number."""
    return found - uncounted if old else found


def _new_networks_merge(
    name: str,
    networks: list[str],
    ips: list[str],
    first: datetime,
    old: dict[str, Any],
    *,
    uncounted: int = 0,
    at_least: bool = False,
    memory_full: bool = False,
) -> tuple[str, dict[str, Any]]:
    """A key's open new-network alert with `networks` added: the first network and its
    address stay first (the alert's link and its "is ours" are about them), the count
    grows, and the first NETWORKS_LISTED networks are listed. `uncounted` of them, past
    the key's memory, may be ones an open alert counted already: they are not counted
    again. `at_least`: calls the run passed over may have come from more. Either way
    the count says "or more" from then on. `memory_full`: some were past the key's
    memory, which the alert says from then on (evidence "memory_full", its size)."""
    # Each read as the detector writes it, or as none: a row edited by hand with a number
    # where a list was raised, which failed the key's check on every run.
    first_network = evidence_text(old, "network", "")
    listed = evidence_texts(old, "networks") or ([first_network] if first_network else [])
    if old and uncounted:
        at_least = True
    else:
        uncounted = 0  # a new alert's networks are each new, and each counted
    # A count that is no whole number (a row edited by hand) is read as none: int() of
    # one raised, and failed the key's check on every run; `true` was counted as 1.
    counted = old.get("count")
    count = (counted if is_count(counted) else len(listed)) + len(networks) - uncounted
    listed = [*listed, *[n for n in networks if n not in listed]][:NETWORKS_LISTED]
    evidence = {
        "network": listed[0] if listed else "",  # (none: "or more" of an unread alert)
        "networks": listed,
        "count": count,
        "ips": [*evidence_texts(old, "ips"), *ips][:10],
        "since": evidence_text(old, "since", first.isoformat()),
    }
    if at_least or old.get("at_least"):
        evidence["at_least"] = True
    if memory_full or old.get("memory_full"):
        kept = old.get("memory_full")
        evidence["memory_full"] = kept if is_count(kept) and kept > 0 else KEY_NETWORKS_KEPT
    return _new_networks_summary(name, evidence), evidence


def _new_networks_summary(name: str, evidence: dict[str, Any]) -> str:
    """What a new-network alert says, within SUMMARY_LENGTH: fewer networks named, then
    the key's name cut short, where they would not fit, so that what it advises and what
    it will no longer report are never cut off."""
    count, listed = evidence["count"], evidence["networks"]
    advice = " It may have leaked." if count >= NEW_NETWORKS_HIGH else ""
    if kept := evidence.get("memory_full"):
        advice += (
            f" Its memory of {kept:,} networks is full: once this alert is acknowledged,"
            " networks past it are not reported again until the key is rolled."
        )
    if count == 1 and "at_least" not in evidence:
        what = f" was used from {listed[0]} ({evidence['ips'][0]}), a network it had not"
        what += f" used before.{advice}"
        return f"{_name_within(name, SUMMARY_LENGTH - len(what))}{what}"
    counted = f"{count} or more" if "at_least" in evidence else f"{count}"
    for named in range(min(3, len(listed)), -1, -1):
        more = "…" if count > named and named else ""
        which = f" ({', '.join(listed[:named])}{more})" if named else ""
        what = f" was used from {counted} networks it had not used before{which}.{advice}"
        summary = f"{name}{what}"
        if len(summary) <= SUMMARY_LENGTH:
            return summary
    return f"{_name_within(name, SUMMARY_LENGTH - len(what))}{what}"
