"""A personal access token used from a network it never used: its person is told.

A PAT is its person's, across their projects, and the most powerful token there is; alerts
are a project's (and a PAT's call may name none), so its new networks raise no alert but a
security notice to the person, as a new sign-in network does. The detector
(alerts/detection/run.py) learns each PAT's networks from the usage log, as it learns keys':
a /24 or /48 first used past the token's first day of use (NEW_NETWORK_GRACE) is `new`.
After its batches it sends each PAT with new networks not yet told one notice listing them,
at most one per PAT per NOTICE_EVERY (the rest wait for the next run past it), recorded in
the person's audit log. A PAT keeps at most TOKEN_NETWORKS_KEPT networks, making room by
forgetting the oldest it told of, then its latest first-day ones down to half; a run learns
at most NEW_NETWORKS_PER_RUN of a PAT's (as of a key's), passes over the rest of its
calls, and its notice then says "or more", as it does of networks left out for want of
room. A batch's networks are learnt in one step; if it fails, each PAT's in one of its own,
so one PAT's failure costs no other its learning. Nothing is sent for a revoked PAT or an
inactive (deleted) account, nor about networks older than NOTICE_WITHIN. Each PAT's notice
is on its own: one that fails is given back, tried again after growing waits
(NOTICE_RETRY_WAITS) and given up after the last, and stops no one else's; their sends
take MAIL_RUN_BUDGET_SECONDS at most a run (notifications.recipients.MailRun).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q, QuerySet
from django.urls import reverse

from alerts.learnt import learnt_before
from alerts.models import TokenNetwork
from alerts.rules import NEW_NETWORK_GRACE
from apikeys.models import PersonalAccessToken
from audit.log import audit_record
from core.db_errors import run_must_stop
from core.mail import one_line
from core.networks import network_around
from notifications.recipients import RETRY_WAITS, MailRun, NobodyReached, send_to_each
from usage.models import Outcome

logger = logging.getLogger(__name__)

NOTICE_EVERY = timedelta(hours=1)
# The most networks a PAT keeps (TokenNetwork rows); a flood from new networks once left
# one row per network without end. Its rows are also what its person is yet to be told,
# so past them it forgets the oldest new networks it was told of rather than learn no
# more (which would tell nobody of the next one), then, for a network to tell, its latest
# first-day networks down to half of them; a network forgotten and used again is told
# again, at most once an hour as any.
TOKEN_NETWORKS_KEPT = 10_000
# A run counts and learns at most this many networks a PAT never used, as a key's
# (alerts/detection/new_networks.py): the call that meets one more is passed over, and
# from the next batch on its calls' networks are not even worked out. Working out and
# learning a network is most of the cost of a call, and a flood of 200,000 calls from new
# /48s on one PAT held every tenant's detection behind it. Past it, its person's notice
# says "or more"; the next run reads the PAT's networks again. Networks in its first day
# count too: told to nobody, they cost the same. (The bound was checked after each batch
# of BATCH_SIZE rows, so a flood's first batch was learnt whole: 9,756 networks.)
NEW_NETWORKS_PER_RUN = 1_000
# New networks not told within this long (the PAT revoked, the mail server down) are not.
NOTICE_WITHIN = timedelta(days=1)
NETWORKS_LISTED = 20
# A notice that reached nobody (its person's address refused, or not answered) is tried
# again after these waits (notifications.recipients, as an alert's email is), and given up
# after the last (NOTICE_ATTEMPTS tries in all, inside NOTICE_WITHIN), logged once. Given
# back to every run, it was claimed, recorded in the person's audit log and tried again
# each minute for a day, a traceback logged and a failure printed each time, and an
# address the mail server hangs on cost every run's notices a timeout of their budget.
NOTICE_RETRY_WAITS = RETRY_WAITS
NOTICE_ATTEMPTS = len(NOTICE_RETRY_WAITS) + 1

# Runs a step in a savepoint of its own; None if it failed (logged and counted).
type Isolated = Callable[[str, Callable[[], Any]], Any]


@dataclass
class RunMemory:
    """What a detection run has met of each PAT's networks, across its batches."""

    # Networks each PAT had not used, met in the run (learnt or not).
    found: dict[int, int] = field(default_factory=dict)
    # The PATs at NEW_NETWORKS_PER_RUN: the rest of the run passes over their calls.
    unread: set[int] = field(default_factory=set)
    # Those of them whose calls were passed over, their networks to tell marked "or more".
    passed: set[int] = field(default_factory=set)


def token_networks_learn(
    rows: list[dict[str, Any]], *, now: datetime, run: RunMemory, isolated: Isolated
) -> None:
    """Learn the networks of the PATs' own successful calls in `rows` (readable rows, of
    any project or none), in the run at `now`; mark those first used past each token's
    first day as new. The calls of a PAT past NEW_NETWORKS_PER_RUN in `run` are passed
    over, and what it is yet to be told of says "or more", as do the networks of a PAT
    without room for them. What is learnt is written in a step of its own (`isolated`),
    and if that fails, each PAT's in one of its own."""
    direct = [
        r for r in rows
        if r["outcome"] == Outcome.OK and r["personal_token_id"] and r["ip"]
        and not r["client_token_id"]
    ]  # fmt: skip
    passed = {r["personal_token_id"] for r in direct if r["personal_token_id"] in run.unread}
    if passed:
        direct = [r for r in direct if r["personal_token_id"] not in run.unread]
    learnt: dict[int, list[TokenNetwork]] = {}
    held: dict[int, int] = {}
    if direct:
        learnt, held, passed_now = _met(direct, run)
        passed |= passed_now
    # Once per run for a PAT passed over: its calls passed over may be from new networks.
    or_more = passed - run.passed
    run.passed |= passed
    # All PATs' networks in one step, one insert: a savepoint and an insert per PAT took a
    # batch of 1,000 PATs twice as long. If it fails, each PAT's again in a step of its
    # own, so that one PAT's failure (its room-making delete past the lock timeout) costs
    # that PAT alone: it undid every PAT's learning in the batch.
    together = partial(_store, [n for ns in learnt.values() for n in ns], held, or_more, now)
    if isolated("PAT networks of the batch", together) is None:
        for token_id in sorted(learnt.keys() | or_more):
            alone = partial(_store, learnt.get(token_id, []), held, or_more & {token_id}, now)
            isolated(f"networks of PAT {token_id}", alone)


def _met(
    direct: list[dict[str, Any]], run: RunMemory
) -> tuple[dict[int, list[TokenNetwork]], dict[int, int], set[int]]:
    """The networks of `direct` each PAT never used, to learn, counted in `run`, each
    PAT's up to NEW_NETWORKS_PER_RUN in the run; how many networks each holds; and the
    PATs with a call passed over, from a network met past that bound."""
    # Each call's network once: working it out is most of learning it.
    networks = [network_around(r["ip"]) for r in direct]
    known, first_uses, held = learnt_before(
        TokenNetwork,
        owner="personal_token_id",
        value="network",
        owner_ids={r["personal_token_id"] for r in direct},
        values=set(networks),
    )
    learnt: dict[int, list[TokenNetwork]] = defaultdict(list)
    # Counted as they come, not after the batch: a flood's first batch (BATCH_SIZE rows)
    # was learnt whole, 9,756 networks for a bound of 1,000.
    found, passed = run.found, set()
    for r, network in zip(direct, networks, strict=True):
        token_id, when = r["personal_token_id"], r["created_at"]
        if network in known[token_id]:
            continue
        if found.get(token_id, 0) >= NEW_NETWORKS_PER_RUN:
            passed.add(token_id)
            continue
        found[token_id] = found.get(token_id, 0) + 1
        known[token_id].add(network)
        first_use = first_uses.setdefault(token_id, when)
        first_uses[token_id] = min(first_use, when)
        learnt[token_id].append(
            TokenNetwork(
                personal_token_id=token_id,
                network=network,
                first_seen=when,
                # Without a zone (SQLite keeps any text; PostgreSQL's inet refuses one):
                # it names an interface of the host that saw the call, not the caller.
                first_ip=r["ip"].partition("%")[0],
                new=when - first_use > NEW_NETWORK_GRACE,
            )
        )
    run.unread |= {t for t in found if found[t] >= NEW_NETWORKS_PER_RUN}
    return learnt, held, passed


def _store(
    learnt: list[TokenNetwork], held: dict[int, int], or_more: set[int], now: datetime
) -> bool:
    """Learn the networks `learnt` each PAT has room for (holding `held`); what the PATs
    `or_more`, and those with a new network left out, are yet to be told of says "or
    more". True once done."""
    kept, left_out = _within_memory(learnt, held, now)
    TokenNetwork.objects.bulk_create(kept, ignore_conflicts=True)
    if or_more | left_out:
        TokenNetwork.objects.filter(
            personal_token_id__in=or_more | left_out, new=True, noticed_at__isnull=True
        ).update(at_least=True)
    return True


def _within_memory(
    learnt: list[TokenNetwork], held: dict[int, int], now: datetime
) -> tuple[list[TokenNetwork], set[int]]:
    """Of the networks to learn, those each PAT (holding `held`) has room for under
    TOKEN_NETWORKS_KEPT, in the order they came, after making room (_make_room). Also
    the PATs with a new network left out (not learnt, so found again by its next call;
    what they are told says "or more")."""
    wanted = Counter(n.personal_token_id for n in learnt)
    to_tell = Counter(n.personal_token_id for n in learnt if n.new)
    room: dict[int, int] = {}
    for token_id, count in wanted.items():
        room[token_id] = TOKEN_NETWORKS_KEPT - held.get(token_id, 0)
        if count > room[token_id]:
            short = count - room[token_id]
            room[token_id] += _make_room(token_id, short, to_tell[token_id], now)
    kept, left_out = [], set()
    for network in learnt:
        if room[network.personal_token_id] > 0:
            room[network.personal_token_id] -= 1
            kept.append(network)
        elif network.new:
            left_out.add(network.personal_token_id)
    return kept, left_out


def _make_room(token_id: int, short: int, to_tell: int, now: datetime) -> int:
    """Forget up to `short` of the PAT's networks; how many were. First its oldest new
    networks told of over NOTICE_EVERY ago, or past NOTICE_WITHIN untold (never to be
    told: the mail server was down for a day); those still to be told, and those told
    within the hour (which hold back its next notice), are kept. Were the untold ones
    kept, a PAT full of them would learn nothing again and its person hear of no new
    network. Then, for the `to_tell` new networks still short of room, its latest
    networks of its first day, down to half the memory: none of them is ever told of, so
    a PAT whose first day filled its memory made no room again. Its earliest stay (its
    own servers'; a flood comes after them): a first-day network forgotten and used again
    is told of as new, at most once an hour as any."""
    done = (
        Q(noticed_at__lt=now - NOTICE_EVERY)
        | Q(noticed_at__isnull=True, first_seen__lt=now - NOTICE_WITHIN)
        | Q(noticed_at__isnull=True, notice_attempts__gte=NOTICE_ATTEMPTS)  # given up
    )
    mine = TokenNetwork.objects.filter(personal_token_id=token_id)
    forgotten = _forget(mine.filter(done, new=True).order_by("first_seen", "id"), short)
    short_to_tell = min(short - forgotten, to_tell)
    if short_to_tell > 0:
        first_day = mine.filter(new=False)
        over_half = first_day.count() - TOKEN_NETWORKS_KEPT // 2
        if over_half > 0:
            latest = first_day.order_by("-first_seen", "-id")
            forgotten += _forget(latest, min(short_to_tell, over_half))
    return forgotten


def _forget(networks: QuerySet[TokenNetwork], most: int) -> int:
    """Forget the first `most` of `networks`; how many were."""
    forgotten, _ = TokenNetwork.objects.filter(
        pk__in=list(networks.values_list("pk", flat=True)[:most])
    ).delete()
    return forgotten


@dataclass(frozen=True)
class Notice:
    """A claimed notice: whom to tell, of which token and networks."""

    to: str
    user_id: int
    token_id: int
    name: str
    hint: str
    networks: list[tuple[str, str, datetime]]  # network, its first address, first seen
    # Calls of the token were passed over, or networks left out for want of room.
    at_least: bool = False
    # Which try this is (NOTICE_ATTEMPTS at most).
    attempt: int = 1


def token_network_notices(now: datetime, isolated: Isolated) -> tuple[int, int]:
    """Tell each PAT's person of its new networks not yet told; (sent, failed)."""
    token_ids = isolated("PATs with new networks", partial(_untold_tokens, now))
    sent = failed = 0
    # Their sends take MAIL_RUN_BUDGET_SECONDS at most, in turn from where the last run
    # stopped, as the alerts' emails do: a mail server that hangs holds no run for long.
    run = MailRun("pat-network-notices")
    for token_id, _ in run.in_turn(token_ids or [], place=_place, tenant=_tenant):
        notice = isolated(f"claiming the notice for PAT {token_id}", partial(_claim, token_id, now))
        if notice is None:
            continue
        if _send(notice, now, run):
            sent += 1
        else:
            failed += 1
    run.finish()
    return sent, failed


def _place(token: tuple[int, int]) -> tuple[int]:
    return (token[0],)


def _tenant(token: tuple[int, int]) -> tuple[int]:
    return (token[1],)  # the token's person: one person's many tokens take one turn


def _untold(now: datetime) -> Any:
    """The new networks to tell of now: untold, not given up, and not waiting to be tried
    again (NOTICE_RETRY_WAITS)."""
    return TokenNetwork.objects.filter(
        Q(notice_retry_at__isnull=True) | Q(notice_retry_at__lte=now),
        new=True,
        noticed_at__isnull=True,
        first_seen__gte=now - NOTICE_WITHIN,
        notice_attempts__lt=NOTICE_ATTEMPTS,
    )


def _untold_tokens(now: datetime) -> list[tuple[int, int]]:
    """Each PAT with untold networks, with its person's id."""
    return sorted(set(_untold(now).values_list("personal_token_id", "personal_token__user_id")))


def _claim(token_id: int, now: datetime) -> Notice | None:
    """Claim the token's untold networks (noticed_at) and record the notice in its person's
    audit log; None if there is nothing to send now: the token revoked, its account
    inactive, or told within the hour (held back until it is over)."""
    token = PersonalAccessToken.objects.select_related("user").filter(pk=token_id).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    recent = TokenNetwork.objects.filter(
        personal_token_id=token_id, noticed_at__gt=now - NOTICE_EVERY
    )
    if recent.exists():
        return None
    # Locked, then read again: two runs at once never both claim a network.
    untold = list(
        _untold(now)
        .filter(personal_token_id=token_id)
        .select_for_update()
        .order_by("first_seen", "id")
    )
    if not untold:
        return None
    TokenNetwork.objects.filter(pk__in=[n.pk for n in untold]).update(noticed_at=now)
    at_least = any(n.at_least for n in untold)
    metadata: dict[str, Any] = {
        "networks": [n.network for n in untold][:NETWORKS_LISTED],
        "ips": [n.first_ip for n in untold][:NETWORKS_LISTED],
        "count": len(untold),
        "since": untold[0].first_seen.isoformat(),
    }
    if at_least:
        metadata["at_least"] = True
    audit_record(
        action="personal_token.new_network", actor=token.user, target=token, metadata=metadata
    )
    return Notice(
        to=token.user.email,
        user_id=token.user.pk,
        token_id=token.pk,
        name=token.name,
        hint=token.hint,
        networks=[(n.network, n.first_ip or "", n.first_seen) for n in untold],
        at_least=at_least,
        attempt=max(n.notice_attempts for n in untold) + 1,
    )


def _send(notice: Notice, now: datetime, run: MailRun) -> bool:
    """Send the claimed notice, after the claim committed; if it cannot be, give the claim
    back (a run after its wait sends it, and records it again: _give_back)."""
    base = settings.DASHBOARD_URL.rstrip("/")
    usage = reverse("usage:personal_token_usage", kwargs={"token_id": notice.token_id})
    networks = reverse("apikeys:personal_token_networks", kwargs={"token_id": notice.token_id})
    listed = [
        f"  {network} ({ip or 'no address'}), first at {when:%-d %b %Y, %H:%M} UTC"
        for network, ip, when in notice.networks[:NETWORKS_LISTED]
    ]
    more = len(notice.networks) - len(listed)
    if more:
        listed.append(f"  and {more} more")
    name = f"“{one_line(notice.name)}” ({notice.hint})"
    count = len(notice.networks)
    if notice.at_least:
        counted = f"{count:,} or more networks"
    else:
        counted = "a network" if count == 1 else f"{count:,} networks"
    # The name is the person's text: one line, so it can add no mail header.
    subject = one_line(
        f"[Reminix] Your personal access token “{notice.name}” was used from a new network"
    )
    message = (
        f"Your personal access token {name} was used from {counted} it had never "
        "been used from:\n" + "\n".join(listed) + "\n\n"
        "If it was you (a new server, a new office), there is nothing to do.\n\n"
        "If not, the token may have leaked. Its calls, and from where:\n"
        f"{base}{usage}\n"
        "Revoke it (and make a new one):\n"
        f"{base}{reverse('apikeys:personal_token_list')}\n"
        "Or limit it to the networks you use:\n"
        f"{base}{networks}\n"
    )
    try:
        send_to_each(
            [notice.to],
            lambda to: send_mail(
                subject=subject,
                message=message,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=to,
            ),
            run=run,
        )
    except Exception as error:
        if run_must_stop(error):
            raise
        _give_back(notice, now, error)
        return False
    return True


def _give_back(notice: Notice, now: datetime, error: Exception) -> None:
    """Give back the claim on a notice that was not sent, for a later run (after
    NOTICE_RETRY_WAITS), or give it up after NOTICE_ATTEMPTS tries: logged once then."""
    attempt = notice.attempt
    retry_at = now + NOTICE_RETRY_WAITS[attempt - 1] if attempt < NOTICE_ATTEMPTS else None
    TokenNetwork.objects.filter(personal_token_id=notice.token_id, noticed_at=now).update(
        noticed_at=None, notice_attempts=attempt, notice_retry_at=retry_at
    )
    if retry_at is None:
        logger.warning(
            "detector: notice for PAT %s reached nobody in %d tries (%s); gave up",
            notice.token_id,
            attempt,
            type(error).__name__,
        )
    elif isinstance(error, NobodyReached):  # (each recipient's failure is logged already)
        logger.info(
            "detector: notice for PAT %s reached nobody (try %d of %d); tried again from %s",
            notice.token_id,
            attempt,
            NOTICE_ATTEMPTS,
            f"{retry_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    else:  # not the mail server's doing: ours, with its traceback
        logger.exception(
            "detector: notice for PAT %s not sent (try %d of %d); tried again later",
            notice.token_id,
            attempt,
            NOTICE_ATTEMPTS,
        )
