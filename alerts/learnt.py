"""What a key or a personal access token did before a batch of the usage log (the networks
it called from, the agents it called): the detector's memory of what is usual for it
(KeyNetwork, KeyAgent, TokenNetwork)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import batched

from django.db.models import Count, Min, Model

# Values read a query at a time (SQLite takes 32,766 parameters).
VALUES_PER_READ = 1000


def learnt_before(
    model: type[Model], *, owner: str, value: str, owner_ids: set[int], values: set[str]
) -> tuple[dict[int, set[str]], dict[int, datetime], dict[int, int]]:
    """Of `values`, those each owner (`owner`: the field naming the key or token) has been
    seen with; each owner's first use of any (its learning period starts there); and how
    many values each holds (what a memory with a bound has room for), read with the first
    use. Only the values the batch mentions are read: a caller with an IPv6 allocation
    has 65,536 /48s."""
    known: dict[int, set[str]] = defaultdict(set)
    for chunk in batched(values, VALUES_PER_READ):
        rows = model._default_manager.filter(
            **{f"{owner}__in": owner_ids, f"{value}__in": chunk}
        ).values_list(owner, value)
        for owner_id, seen in rows:
            known[owner_id].add(seen)
    first_uses: dict[int, datetime] = {}
    held: dict[int, int] = {}
    rows = (
        model._default_manager.filter(**{f"{owner}__in": owner_ids})
        .values(owner)
        .annotate(first=Min("first_seen"), held=Count("pk"))
        .values_list(owner, "first", "held")
    )
    for owner_id, first, count in rows:
        first_uses[owner_id], held[owner_id] = first, count
    return known, first_uses, held
