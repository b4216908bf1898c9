"""Tokens kept in text before the text was checked for one (core.validators.no_secret),
cut by the data migrations that came with each check: names and reasons are shown to
every member, over the API and in mail, so one pasted there before is still shown.

As every redaction does (core.redact.redact_secrets), the secret goes and its prefix
stays, so a reader still sees what kind of token leaked; a hint (four characters) is no
secret and stays. Which text holds a token is known only once it is read as a reader
sees it (invisible characters, fullwidth forms), which no SQL condition can say: the
table is walked in order of its key, a batch at a time, each batch in a transaction of
its own, so a big table is neither read into memory nor locked until the end (the
migrations using this set `atomic = False`). A row changed since its batch was read is
left as the change made it (the change was checked).

The checks grew (a token with spaces inside it, a token's 36 characters without their
prefix: core.redact.holds_token), and the migrations that came with them cut what the new
checks find (`cut=redact_held_tokens`) from the same columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db import IntegrityError, models, transaction

from core.redact import redact_secrets

BATCH = 1000


def rows_in_batches(
    queryset: models.QuerySet[Any], *fields: str, batch: int = BATCH
) -> Iterator[list[tuple[Any, ...]]]:
    """(pk, *fields) of every row of `queryset`, `batch` rows at a time, in order of pk."""
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page.values_list("pk", *fields)[:batch])
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def stored_secrets_cut(
    model: type[models.Model],
    *fields: str,
    using: str,
    batch: int = BATCH,
    cut: Callable[[str], str] = redact_secrets,
) -> int:
    """Cut the tokens held in `fields` of every row of `model`, as `cut` finds them (whole
    ones by default); how many rows changed."""
    changed = 0
    for rows in rows_in_batches(model._default_manager.using(using).all(), *fields, batch=batch):
        with transaction.atomic(using=using):
            for pk, *values in rows:
                for field, value in zip(fields, values, strict=True):
                    if value and _cut_kept(model, pk, field, value, cut(value), using=using):
                        changed += 1
    return changed


def _cut_kept(
    model: type[models.Model], pk: Any, field: str, value: str, cut: str, *, using: str
) -> bool:
    if cut == value:
        return False
    cut = _fitted(cut, max_length=_max_length(model, field))
    rows = model._default_manager.using(using).filter(pk=pk, **{field: value})
    return rows.update(**{field: cut}) > 0


def stored_secrets_cut_unique(
    model: type[models.Model],
    field: str,
    *,
    using: str,
    batch: int = BATCH,
    cut: Callable[[str], str] = redact_secrets,
) -> int:
    """As stored_secrets_cut, for a name a unique constraint holds: cut, two names may be
    one (“CI reminix_sk_[redacted]” twice in a project). Both keys work and either may be
    in use, so neither is ended: the later one is given the first free “Name (2)”,
    “Name (3)”, … (as apikeys 0025 did), cut to keep within the column."""
    changed = 0
    for rows in rows_in_batches(model._default_manager.using(using).all(), field, batch=batch):
        for pk, value in rows:
            kept = cut(value) if value else value
            if kept != value and _renamed(model, pk, field, value, kept, using=using):
                changed += 1
    return changed


def _renamed(
    model: type[models.Model], pk: Any, field: str, value: str, cut: str, *, using: str
) -> bool:
    rows = model._default_manager.using(using).filter(pk=pk, **{field: value})
    max_length = _max_length(model, field)
    assert max_length is not None
    for name in _names(cut, max_length=max_length):
        try:
            with transaction.atomic(using=using):
                return rows.update(**{field: name}) > 0
        except IntegrityError:
            continue
    raise IntegrityError(f"no free name for {model._meta.label} {pk} after {_TRIES} tries")


_TRIES = 1000


def _max_length(model: type[models.Model], field: str) -> int | None:
    column = model._meta.get_field(field)
    return column.max_length if isinstance(column, models.CharField) else None


def _fitted(cut: str, *, max_length: int | None) -> str:
    """`cut` within its column. A cut is nearly always shorter than the text it came from,
    but not where the token was written in characters that each read as several (a
    ligature's ﬃ is ffi): PostgreSQL would refuse the row and stop the upgrade there."""
    if max_length is None or len(cut) <= max_length:
        return cut
    return cut[: max_length - 1].rstrip() + "…"


def _names(cut: str, *, max_length: int) -> Iterator[str]:
    yield _fitted(cut, max_length=max_length)
    for n in range(2, _TRIES + 1):
        suffix = f" ({n})"
        yield cut[: max_length - len(suffix)].rstrip() + suffix
