"""Which constraint an IntegrityError is about, so that a service can turn the one it
expects into its own error and let every other one through as the bug it is."""

from __future__ import annotations

from django.db import IntegrityError


def violates(error: IntegrityError, constraint: str) -> bool:
    """Whether `error` is a violation of the constraint (or unique index) named
    `constraint`. PostgreSQL names it in the error's diagnostics; SQLite names a unique
    index on expressions or with a condition in its message (a plain unique column it
    names by its columns instead, so this answers False for those)."""
    cause = error.__cause__
    diagnostics = getattr(cause, "diag", None)
    if diagnostics is not None:
        return bool(getattr(diagnostics, "constraint_name", None) == constraint)
    return str(cause or error) == f"UNIQUE constraint failed: index '{constraint}'"
