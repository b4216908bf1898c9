"""Finding a token's caller: from this worker's copy when that is certainly current, else
from the database in one statement (api/lookup.py).

With a shared store (REDIS_URL), every call makes one Redis round trip, a small script
that counts the call against its token's rate limit and says when anything the worker's
copy of the caller depends on last changed, and what time it is, both by the Redis clock
(core/invalidation.py). A copy lives at most CACHE_SECONDS; made after the last change,
it is used as it is, so the call needs nothing else from a shared store. Otherwise, and
whenever Redis cannot be asked, the database answers, and the copy is renewed with the
time of this call's round trip, which came before that read.

An endpoint whose only effects are the records it defers (an agent's run: its execution
and its usage entry) goes further when the worker holds a copy: it answers from the copy
first, and its one round trip, made before the answer leaves, both confirms the copy
(no newer change marked, the call within its limit) and appends the call's records to the
usage stream (`confirm`). An answer the round trip does not confirm is thrown away with
its records and the call is answered again the checked way, so nothing is answered from
a stale copy, and the call costs one write to Redis instead of two.

Without a shared store there are no copies: each call reads the database, once, and rate
limits are counted in the process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from api.lookup import Found, Resource, lookup
from apikeys.tokens import TokenKind
from core.invalidation import CACHE_SECONDS, marker_key
from core.shared_store import SharedStore, StoreUnavailable, shared_store

MAX_CACHED = 4096
WINDOW_SECONDS = 60

# KEYS[1]: the rate-limit counter ("" when limits are off); KEYS[2…]: change markers.
# ARGV[1]: the counter's lifetime. Returns {calls counted this window, the newest
# marker's time (0: none stands), the time now}; times by the Redis clock, in µs. A
# marker that holds no time (set by an older release) counts as a change made now.
ADMIT_SCRIPT = """
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local calls = 0
if KEYS[1] ~= "" then
  calls = redis.call('INCR', KEYS[1])
  if calls == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
end
local changed = 0
for i = 2, #KEYS do
  local marked = redis.call('GET', KEYS[i])
  if marked then
    local at = tonumber(marked) or now
    if at < 1000000000000000 then at = now end
    if at > changed then changed = at end
  end
end
return {calls, changed, now}
"""
ADMIT_SHA = hashlib.sha1(ADMIT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script id

# KEYS[1]: the rate-limit counter ("" when limits are off); KEYS[2]: the usage stream;
# KEYS[3…]: the copy's change markers. ARGV[1]: the counter's lifetime; ARGV[2]: the
# copy's time (µs, Redis clock); ARGV[3]: the limit (0: not checked); ARGV[4…]: the
# stream entry's fields. Returns {calls counted, 1}: the copy is current, the call within
# its limit, and its entry appended; {calls, 2}: over the limit, nothing appended; {0, 0}:
# a change was marked at or after the copy's time, nothing counted or appended.
CONFIRM_SCRIPT = """
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local seen = tonumber(ARGV[2])
for i = 3, #KEYS do
  local marked = redis.call('GET', KEYS[i])
  if marked then
    local at = tonumber(marked) or now
    if at < 1000000000000000 then at = now end
    if at >= seen then return {0, 0} end
  end
end
local calls = 0
if KEYS[1] ~= "" then
  calls = redis.call('INCR', KEYS[1])
  if calls == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
  local limit = tonumber(ARGV[3])
  if limit > 0 and calls > limit then return {calls, 2} end
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
return {calls, 1}
"""
CONFIRM_SHA = hashlib.sha1(CONFIRM_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script id

type CacheKey = tuple[str, str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class Pending:
    """A caller taken from a worker's copy that no round trip has confirmed yet: what
    `confirm` needs to check it, count the call and append its records."""

    key: CacheKey
    digest: str
    identities: tuple[str, ...]
    seen_at: int


@dataclass(frozen=True, slots=True)
class Admission:
    """The token's caller (None: no such token) and its calls this window, when counted
    in the shared store (None: not counted there). `pending`: the caller is a copy still
    to be confirmed (`confirm`), and the call is not counted yet."""

    found: Found | None
    calls: int | None
    pending: Pending | None = None


@dataclass(frozen=True, slots=True)
class _Copy:
    found: Found | None
    identities: tuple[str, ...]
    loaded_at: float  # monotonic, taken before the database was asked
    # The Redis clock (µs) at the round trip that came before the database was asked; 0
    # when none did. Only a change marked before this time is in the copy.
    seen_at: int


class _Copies:
    """This worker's copies of callers, least recently used dropped first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: OrderedDict[CacheKey, _Copy] = OrderedDict()

    def get(self, key: CacheKey) -> _Copy | None:
        with self._lock:
            copy = self._copies.get(key)
            if copy is None:
                return None
            if time.monotonic() - copy.loaded_at >= CACHE_SECONDS:
                del self._copies[key]
                return None
            self._copies.move_to_end(key)
            return copy

    def put(self, key: CacheKey, copy: _Copy) -> None:
        with self._lock:
            self._copies[key] = copy
            self._copies.move_to_end(key)
            while len(self._copies) > MAX_CACHED:
                self._copies.popitem(last=False)

    def drop(self, key: CacheKey) -> None:
        with self._lock:
            self._copies.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._copies.clear()


copies = _Copies()


def identities(
    found: Found | None, resource: Resource | None, value: str | None
) -> tuple[str, ...]:
    """What a copy of `found` depends on, as core.invalidation.changed() names it."""
    if found is None:
        return ()
    names: list[str] = []
    for token in (found.api_key, found.client_token, found.personal_token):
        if token is not None:
            names.append(token.change_identity)
    if found.user is not None:
        names.append(found.user.change_identity)
    if found.project is not None:
        names.append(found.project.change_identity)
        if resource is not None and value is not None:
            names.append(resource.identity(found.project.pk, value))
    return tuple(names)


def admit(
    *,
    kind: TokenKind,
    digest: str,
    project_slug: str = "",
    origin: str = "",
    resource: Resource | None = None,
    resource_value: str | None = None,
    confirm_later: bool = False,
) -> Admission:
    """The caller of a token with keyed hash `digest`, and the call counted.
    `confirm_later`: a copy may be handed out unconfirmed (Admission.pending), for the
    caller to confirm with `confirm` before its answer leaves."""
    store = shared_store()
    key: CacheKey = (kind.value, digest, project_slug, origin, resource_value)
    copy = copies.get(key) if store is not None else None
    if confirm_later and copy is not None and store is not None and store.available:
        return Admission(copy.found, None, Pending(key, digest, copy.identities, copy.seen_at))
    calls = None
    seen_at = 0
    if store is not None:
        try:
            calls, changed_at, seen_at = _count_and_check(
                store, digest, copy.identities if copy else ()
            )
        except StoreUnavailable:
            copy = None  # changes cannot be checked: the database decides
        else:
            if copy is not None and changed_at < copy.seen_at:
                return Admission(copy.found, calls)
    loaded_at = time.monotonic()
    found = lookup(
        kind=kind,
        digest=digest,
        project_slug=project_slug,
        origin=origin,
        resource=resource,
        resource_value=resource_value,
    )
    if seen_at and store is not None and store.available:
        names = identities(found, resource, resource_value)
        copies.put(key, _Copy(found, names, loaded_at, seen_at))
    return Admission(found, calls)


def _counter(digest: str) -> str:
    """The token's rate-limit counter for this window ("" when limits are off)."""
    if settings.API_RATE_LIMIT_PER_MINUTE <= 0:
        return ""
    window = int(time.time() // WINDOW_SECONDS)
    return f"{settings.REDIS_KEY_PREFIX}calls:{digest[:24]}:{window}"


def _run_script(store: SharedStore, sha: str, script: str, args: tuple[Any, ...]) -> Any:
    (reply,) = store.round_trip(("EVALSHA", sha, *args))
    if isinstance(reply, Exception):  # NOSCRIPT: Redis restarted, or a new one; teach it
        (reply,) = store.round_trip(("EVAL", script, *args))
        if isinstance(reply, Exception):
            raise StoreUnavailable(str(reply))
    return reply


def _count_and_check(
    store: SharedStore, digest: str, names: tuple[str, ...]
) -> tuple[int | None, int, int]:
    """One round trip: the call counted against its token's limit, the time of the newest
    change marked for any of `names` (0: none), and the time now (Redis clock, µs)."""
    counter = _counter(digest)
    keys = [counter, *(marker_key(name) for name in names)]
    reply = _run_script(store, ADMIT_SHA, ADMIT_SCRIPT, (len(keys), *keys, WINDOW_SECONDS * 2))
    calls, changed_at, now = int(reply[0]), int(reply[1]), int(reply[2])
    return (calls if counter else None), changed_at, now


def confirm(
    pending: Pending, *, stream: str, fields: list[bytes | str], check_limit: bool
) -> int | None:
    """One round trip for a call answered from an unconfirmed copy: the copy checked
    against the change markers, the call counted (and, if `check_limit`, held to the
    limit) and, only if both pass, `fields` appended to `stream` as one entry.

    Returns the calls counted this window (0 when limits are off); None when the answer
    must not leave: the copy is stale (it is dropped), the call is over its limit, or the
    store did not answer. The caller then answers again the checked way."""
    store = shared_store()
    if store is None:
        return None
    counter = _counter(pending.digest)
    keys = [counter, stream, *(marker_key(name) for name in pending.identities)]
    limit = settings.API_RATE_LIMIT_PER_MINUTE if check_limit else 0
    args = (len(keys), *keys, WINDOW_SECONDS * 2, pending.seen_at, max(limit, 0), *fields)
    try:
        reply = _run_script(store, CONFIRM_SHA, CONFIRM_SCRIPT, args)
    except StoreUnavailable:
        return None
    calls, outcome = int(reply[0]), int(reply[1])
    if outcome == 0:
        copies.drop(pending.key)
    return calls if outcome == 1 else None
