"""Finding a token's caller: from this worker's copy when that is certainly current, else
from the database in one statement (api/lookup.py).

With a shared store (REDIS_URL), every call makes one Redis round trip, a small script
that counts the call against its token's rate limit and says when anything the worker's
copy of the caller depends on last changed, and what time it is, both by the Redis clock
(core/invalidation.py). A copy lives at most CACHE_SECONDS; made after the last change,
it is used as it is, so the call needs nothing else from a shared store. Otherwise, and
whenever Redis cannot be asked, the database answers, and the copy is renewed with the
time of this call's round trip, which came before that read.

Without a shared store there are no copies: each call reads the database, once, and rate
limits are counted in the process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import NoScriptError

from api.lookup import Found, Resource, lookup
from apikeys.tokens import TokenKind
from core.invalidation import CACHE_SECONDS, marker_key
from core.redact import may_hold_token
from core.shared_limits import count_alias_key
from core.shared_store import SharedStore, StoreUnavailable, shared_store

MAX_CACHED = 4096
# And at most this many characters of their rows' text (JSON included), least recently used
# dropped first. A copy holds its rows as Python objects: a client token's contexts (4 KiB
# of JSON each) and an agent's config (64 KiB) take many times their text once parsed
# (`[[],[],…]` twenty times), and anyone can mint client tokens by the thousand with a key
# of their own project: 4,096 such copies took gigabytes in each worker, which every tenant
# shares. Ordinary callers' rows hold well under 1,000 characters.
MAX_CACHED_CHARS = 4 * 1024 * 1024
WINDOW_SECONDS = 60

# KEYS[1]: the rate-limit counter ("" when limits are off); KEYS[2]: the store's epoch;
# KEYS[3]: where the secret's count may be named to its key's (core/shared_limits.py: a
# rolled key's two secrets count as one through the overlap); KEYS[4…]: change markers.
# ARGV[1]: the counter's lifetime; ARGV[2]: the window's number. Returns {calls counted
# this window, the newest marker's time (0: none stands), the time now, the epoch}; times
# by the Redis clock, in µs. A marker that holds no time (set by an older release) counts
# as a change made now. (The key's counter is named here, from what KEYS[3] holds: one
# Redis, as REDIS_URL names, not a cluster's slots.)
#
# The epoch is a key without a lifetime, made (as the time now) when it is missing: a
# store that lost its keys (FLUSHDB, a restart without persistence, an eviction) lost it
# too, and gets a new one. A copy is used only under the epoch it was made in, so markers
# lost with it cannot let a copy outlive a change.
ADMIT_SCRIPT = """
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local calls = 0
if KEYS[1] ~= "" then
  local counter = KEYS[1]
  local shared = redis.call('GET', KEYS[3])
  if shared then counter = shared .. ':' .. ARGV[2] end
  calls = redis.call('INCR', counter)
  if calls == 1 then redis.call('EXPIRE', counter, ARGV[1]) end
end
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = string.format('%d', now)
  redis.call('SET', KEYS[2], epoch)
end
local changed = 0
for i = 4, #KEYS do
  local marked = redis.call('GET', KEYS[i])
  if marked then
    local at = tonumber(marked) or now
    if at < 1000000000000000 then at = now end
    if at > changed then changed = at end
  end
end
return {calls, changed, now, epoch}
"""
ADMIT_SHA = hashlib.sha1(ADMIT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script id

type CacheKey = tuple[str, str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class Admission:
    """The token's caller (None: no such token) and its calls this window, when counted
    in the shared store (None: not counted there)."""

    found: Found | None
    calls: int | None


@dataclass(frozen=True, slots=True)
class _Copy:
    found: Found | None
    identities: tuple[str, ...]
    loaded_at: float  # monotonic, taken before the database was asked
    # The Redis clock (µs) at the round trip that came before the database was asked; 0
    # when none did. Only a change marked before this time is in the copy.
    seen_at: int
    epoch: bytes  # the store's epoch at that round trip (see ADMIT_SCRIPT)


class _Copies:
    """This worker's copies of callers, at most MAX_CACHED of them and MAX_CACHED_CHARS
    characters of their rows, least recently used dropped first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: OrderedDict[CacheKey, _Copy] = OrderedDict()
        self.chars = 0  # of every copy held

    def __len__(self) -> int:
        return len(self._copies)

    def get(self, key: CacheKey) -> _Copy | None:
        with self._lock:
            copy = self._copies.get(key)
            if copy is None:
                return None
            if time.monotonic() - copy.loaded_at >= CACHE_SECONDS:
                self._drop(key)
                return None
            self._copies.move_to_end(key)
            return copy

    def put(self, key: CacheKey, copy: _Copy) -> None:
        chars = _chars(copy)
        with self._lock:
            self._drop(key)
            if chars > MAX_CACHED_CHARS:
                return  # heavier than all the others together: read afresh each time
            self._copies[key] = copy
            self.chars += chars
            while len(self._copies) > MAX_CACHED or self.chars > MAX_CACHED_CHARS:
                self._drop(next(iter(self._copies)))

    def _drop(self, key: CacheKey) -> None:
        dropped = self._copies.pop(key, None)
        if dropped is not None:
            self.chars -= _chars(dropped)

    def clear(self) -> None:
        with self._lock:
            self._copies.clear()
            self.chars = 0


def _chars(copy: _Copy) -> int:
    return copy.found.chars if copy.found is not None else 0


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
    count: bool = True,
) -> Admission:
    """The caller of a token with keyed hash `digest`, and the call counted (unless not
    `count`: a second look at a caller whose call was counted already)."""
    store = shared_store()
    key: CacheKey = (kind.value, digest, project_slug, origin, resource_value)
    # A token pasted where a copy is keyed (the agent's name in the path, X-Project, Origin:
    # each takes a token's characters) is never kept as the key of one, nor named to Redis
    # in the copy's change markers: a token is never kept in a cache, this worker's included.
    kept = not any(map(may_hold_token, (project_slug, origin, resource_value or "")))
    copy = copies.get(key) if store is not None and kept else None
    calls = None
    seen_at = 0
    epoch = b""
    if store is not None:
        try:
            calls, changed_at, seen_at, epoch = _count_and_check(
                store, digest, copy.identities if copy else (), count=count
            )
        except StoreUnavailable:
            copy = None  # changes cannot be checked: the database decides
        else:
            if copy is not None and changed_at < copy.seen_at and epoch == copy.epoch:
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
    if kept and seen_at and store is not None and store.available:
        names = identities(found, resource, resource_value)
        copies.put(key, _Copy(found, names, loaded_at, seen_at, epoch))
    return Admission(found, calls)


def _count_and_check(
    store: SharedStore, digest: str, names: tuple[str, ...], *, count: bool = True
) -> tuple[int | None, int, int, bytes]:
    """One round trip: the call counted against its token's limit, the time of the newest
    change marked for any of `names` (0: none), the time now (Redis clock, µs), and the
    store's epoch."""
    prefix = settings.REDIS_KEY_PREFIX
    counting = count and settings.API_RATE_LIMIT_PER_MINUTE > 0
    window = int(time.time() // WINDOW_SECONDS)
    counter = f"{prefix}calls:{digest[:24]}:{window}" if counting else ""
    alias = count_alias_key(digest)
    keys = [counter, f"{prefix}epoch", alias, *(marker_key(name) for name in names)]
    args: tuple[str | int, ...] = (len(keys), *keys, WINDOW_SECONDS * 2, window)
    (reply,) = store.round_trip(("EVALSHA", ADMIT_SHA, *args))
    if isinstance(reply, NoScriptError):
        # Redis restarted, or a new one: teach it the script. (Any other error may come
        # after the script counted the call: running it again would count it twice.)
        (reply,) = store.round_trip(("EVAL", ADMIT_SCRIPT, *args))
    if isinstance(reply, Exception):
        raise StoreUnavailable(f"the admit script answered {reply}")
    try:
        calls, changed_at, now, epoch = int(reply[0]), int(reply[1]), int(reply[2]), reply[3]
        if not isinstance(epoch, bytes):
            epoch = str(epoch).encode()
    except (TypeError, ValueError, IndexError) as odd:
        raise StoreUnavailable(f"the admit script answered {odd}") from None
    return (calls if counting else None), changed_at, now, epoch
