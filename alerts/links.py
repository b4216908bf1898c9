"""Where an alert points: the calls behind it, on its key's usage log. Shared by the Alerts
page and the alert email."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.urls import reverse

from alerts.models import Flag, is_count
from apikeys.models import ClientToken
from core.networks import network_around
from usage.forms import AGENT_NAME
from usage.key_usage import CALLER_CLIENT_TOKENS, CALLER_KEY, TEXT_SEARCH_SPAN

MINUTE_FORMAT = "%Y-%m-%dT%H:%M"

# The kinds whose check reads the key's own calls alone (alerts/detection: each passes over
# a call with a client token): their link leaves out the calls of the key's client tokens
# from the same network or to the same agent in the same minutes.
KEY_OWN_KINDS = frozenset(
    {
        Flag.Kind.NEW_NETWORK,
        Flag.Kind.NEW_AGENT,
        Flag.Kind.BLOCKED_NETWORK,
        Flag.Kind.KEY_ON_CLIENT_API,
    }
)


def evidence_caller(flag: Flag) -> str:
    """Whose calls raised `flag`, as the key log's Caller filter takes it: a client
    token's alert its client tokens' (the token's own id narrows it further); an ended
    key's alert, a new network, a new agent and an allowlist's refusal the key's own; ""
    (both) for what counts both, a burst of refusals or a spike (and signs together, of
    which a spike is one). Read from the alert's kind, never from its evidence, which has
    never held a caller: an alert raised before the filter links the same way."""
    if flag.client_token_id is not None:
        return CALLER_CLIENT_TOKENS
    if flag.kind in KEY_OWN_KINDS or flag.kind == Flag.Kind.ENDED_TOKEN_USED:
        return CALLER_KEY
    return ""


def _minute(moment: datetime, *, up: bool = False) -> str:
    floor = moment.replace(second=0, microsecond=0)
    if up and floor < moment:
        floor += timedelta(minutes=1)
    return floor.strftime(MINUTE_FORMAT)


def first_new_agent(flag: Flag) -> str:
    """The agent a new-agent alert names first, if the log's filter can take it (the
    detector writes only names that were called; an older row's evidence is not trusted)."""
    agents = flag.evidence.get("agents")
    first = agents[0] if isinstance(agents, list) and agents else ""
    return first if isinstance(first, str) and AGENT_NAME.fullmatch(first) else ""


def one_network(addresses: object) -> str:
    """The network (/24, IPv6 /48) around every one of `addresses`, as the log's address
    filter takes it, or "" if they are in several (or are no list of addresses: an older
    row's evidence is not trusted)."""
    if not isinstance(addresses, list) or not addresses:
        return ""
    try:
        networks = {network_around(str(address)) for address in addresses}
    except ValueError:
        return ""
    return networks.pop() if len(networks) == 1 else ""


def evidence_note(flag: Flag) -> str:
    """What the link leaves out or takes in, where the alert is about several things: a
    new-agent alert's link shows the calls to the first agent it names, not to all of them;
    one about several new networks shows every call of the key itself in its minutes
    (its client tokens' are no part of the check)."""
    count = flag.evidence.get("count", 1)
    if flag.kind == Flag.Kind.NEW_NETWORK and is_count(count) and count > 1:
        counted = f"{count} or more" if flag.evidence.get("at_least") else f"{count}"
        return (
            f"every call of the key itself in those minutes, from the {counted} new networks "
            "and its usual ones"
        )
    if flag.kind == Flag.Kind.KEY_ON_CLIENT_API and _searched_from(flag) is not None:
        return f"those of its last {TEXT_SEARCH_SPAN // timedelta(hours=1)} hours"
    agent = first_new_agent(flag) if flag.kind == Flag.Kind.NEW_AGENT else ""
    if not agent or not is_count(count) or count < 2:
        return ""
    return f"those to {agent}, the first of the {count} agents"


def evidence_url(flag: Flag) -> str | None:
    """The key's usage log narrowed to the calls behind `flag`, where there are such calls."""
    if flag.api_key_id is None:
        return None
    url = reverse(
        "usage:api_key_usage", kwargs={"slug": flag.project.slug, "key_id": flag.api_key_id}
    )
    if flag.kind == Flag.Kind.UNUSED_KEY:
        return url
    params: dict[str, str] = {}
    evidence = flag.evidence
    if flag.client_token_id is not None:
        params["client_token"] = _client_token_public_id(flag)
    if outcome := evidence.get("outcome"):
        params["outcome"] = outcome
    # The calls of the one new network, every address in it. Several networks: every call
    # in the alert's minutes (the first network alone would hide the others; the alert's
    # page says so).
    if (
        flag.kind == Flag.Kind.NEW_NETWORK
        and is_count(count := evidence.get("count", 1))
        and count == 1
        and (network := one_network(evidence.get("ips")))
    ):
        params["ip"] = network
    if flag.kind == Flag.Kind.NEW_AGENT and (agent := first_new_agent(flag)):
        # The calls to the first new agent: the key's own agent's calls in the same
        # minutes would bury them. The alert's page says it is the first of how many.
        params["agent"] = agent
    if flag.kind == Flag.Kind.KEY_ON_CLIENT_API:
        # Its calls to the Client API, whatever their answer: a 403, and a wrong path's 404
        # or a wrong method's 405 (the key's 403s on /v1 are none of them).
        params["path"] = "/client"
    if flag.kind == Flag.Kind.BLOCKED_NETWORK:
        # The refusals (403: the log has no filter by error code), not the key's own calls
        # in the same minutes; from the one network, when they all came from one.
        params["status"] = "403"
        if network := one_network(evidence.get("ips")):
            params["ip"] = network
    if caller := evidence_caller(flag):
        params["caller"] = caller
    params["since"] = _minute(flag.first_seen)
    # Last seen in the calendar's last minute, a minute on overflows: the log to its end.
    with suppress(OverflowError):
        params["until"] = _minute(flag.last_seen + timedelta(seconds=1), up=True)
    if "path" in params and (searched_from := _searched_from(flag)) is not None:
        params["since"] = _minute(searched_from)
    return f"{url}?{urlencode(params)}"


def _searched_from(flag: Flag) -> datetime | None:
    """Where the link of an alert that searches a path starts, when its calls span more than
    the call log searches a path over (a day): that much before their end. None when they
    fit."""
    try:
        end = datetime.strptime(
            _minute(flag.last_seen + timedelta(seconds=1), up=True), MINUTE_FORMAT
        ).replace(tzinfo=flag.last_seen.tzinfo)
    except OverflowError:
        return None
    start = end - TEXT_SEARCH_SPAN
    return start if start > flag.first_seen else None


def _client_token_public_id(flag: Flag) -> str:
    """The public id of the client token `flag` is about, read alone unless the page loaded
    the token already: the whole row holds its contexts' JSON, and one Python cannot read
    back (put there by hand, a restore) failed the detector's run in its alert emails."""
    if Flag.client_token.is_cached(flag):
        return flag.client_token.public_id if flag.client_token is not None else ""
    token_id = flag.client_token_id
    if token_id is None:
        return ""
    found = ClientToken.objects.filter(pk=token_id).values_list("public_id", flat=True)
    return found.first() or ""
