"""What each alert kind counts as suspicious: the defaults, their bounds, and a project's
own values (AlertRules, set by its owners on the Alerts page).

A project without its own value for a number uses the default, so a project nobody tuned
is checked exactly as before rules existed. The detector resolves every project it meets
in a batch with one query (`thresholds_for`), not one per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

AUTH_BURST_THRESHOLD = 20
AUTH_BURST_WINDOW = timedelta(minutes=10)
SPIKE_FACTOR = 5
SPIKE_MIN_CALLS = 100
CLIENT_TOKEN_MAX_IPS = 5
NEW_NETWORK_GRACE = timedelta(days=1)
UNUSED_AFTER = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Tunable:
    """One number an owner may set: the AlertRules field, the kind it tunes, how it
    reads, its default and the values it may take."""

    name: str
    kind: str
    label: str
    unit: str
    default: int
    least: int
    most: int


# Kinds that can be turned off: those whose finding depends on a number, i.e. on what is
# ordinary for the project. A revoked key still tried, an allowlist refusing a call, a key
# sent to the Client API and a token found in public are never ordinary, and stay on.
BURST, NETWORK, SPIKE, MANY_IPS, UNUSED = (
    "auth_failure_burst",
    "new_network",
    "volume_spike",
    "client_token_many_ips",
    "unused_key",
)
SWITCHABLE = (BURST, NETWORK, SPIKE, MANY_IPS, UNUSED)

TUNABLES = (
    Tunable("burst_failures", BURST, "Refusals", "refusals", AUTH_BURST_THRESHOLD, 2, 10_000),
    Tunable(
        "burst_minutes",
        BURST,
        "Within",
        "minutes",
        AUTH_BURST_WINDOW // timedelta(minutes=1),
        1,
        1_440,
    ),
    Tunable(
        "new_network_grace_hours",
        NETWORK,
        "Learning period after a key's first call",
        "hours",
        NEW_NETWORK_GRACE // timedelta(hours=1),
        1,
        720,
    ),
    Tunable("spike_factor", SPIKE, "Times the key's hourly average", "×", SPIKE_FACTOR, 2, 1_000),
    Tunable(
        "spike_min_calls", SPIKE, "And at least", "calls in the hour", SPIKE_MIN_CALLS, 1, 1_000_000
    ),  # fmt: skip
    Tunable(
        "client_token_max_ips", MANY_IPS, "Addresses", "addresses", CLIENT_TOKEN_MAX_IPS, 2, 1_000
    ),  # fmt: skip
    Tunable("unused_days", UNUSED, "Unused for more than", "days", UNUSED_AFTER.days, 7, 3_650),
)
TUNABLE_BY_NAME = {t.name: t for t in TUNABLES}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What the detector uses for one project."""

    burst_failures: int = AUTH_BURST_THRESHOLD
    burst_window: timedelta = AUTH_BURST_WINDOW
    new_network_grace: timedelta = NEW_NETWORK_GRACE
    spike_factor: int = SPIKE_FACTOR
    spike_min_calls: int = SPIKE_MIN_CALLS
    client_token_max_ips: int = CLIENT_TOKEN_MAX_IPS
    unused_after: timedelta = UNUSED_AFTER
    off: frozenset[str] = field(default_factory=frozenset)

    def on(self, kind: str) -> bool:
        return kind not in self.off

    @classmethod
    def of(cls, values: dict[str, int | None], off: Iterable[object]) -> Thresholds:
        """From an AlertRules row's values (None: the default)."""

        def get(name: str) -> int:
            value = values.get(name)
            return TUNABLE_BY_NAME[name].default if value is None else value

        return cls(
            burst_failures=get("burst_failures"),
            burst_window=timedelta(minutes=get("burst_minutes")),
            new_network_grace=timedelta(hours=get("new_network_grace_hours")),
            spike_factor=get("spike_factor"),
            spike_min_calls=get("spike_min_calls"),
            client_token_max_ips=get("client_token_max_ips"),
            unused_after=timedelta(days=get("unused_days")),
            off=frozenset(k for k in off if isinstance(k, str) and k in SWITCHABLE),
        )


DEFAULTS = Thresholds()
