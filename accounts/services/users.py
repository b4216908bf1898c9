"""A new account, with its first project."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services.projects import project_create
from audit.log import audit_record


@transaction.atomic
def user_sign_up(
    *,
    email: str,
    password: str | None = None,
    password_hash: str | None = None,
    name: str = "",
    ip: str | None = None,
    verified: bool = False,
) -> User:
    """A new user and their first project. `verified`: the address is known to be theirs
    already (an invitation's link reached it); otherwise a link confirms it. The password
    in clear, or `password_hash` (make_password's) where it was hashed already."""
    if (password is None) == (password_hash is None):
        raise ValueError("A sign-up takes a password or its hash, not both or neither.")
    user = User.objects.create_user(
        email=email,
        password=password,
        password_hash=password_hash,
        name=name.strip(),
        email_verified_at=timezone.now() if verified else None,
    )
    audit_record(action="user.signed_up", actor=user, target=user, ip=ip)
    first_name = (user.name.split()[0][:60] + "'s project") if user.name else "My first project"
    project_create(name=first_name, owner=user, ip=ip)
    return user
