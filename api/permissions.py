"""What an endpoint requires of its caller.

Permission is the tokens' vocabulary (apikeys.models); endpoints name it through this
module, so that an app that only serves endpoints (agents) needs the API frame and never
the token app itself.
"""

from __future__ import annotations

from api import errors
from api.authentication import Caller
from apikeys.models import Permission

__all__ = ["Permission", "require_permission"]


def require_permission(caller: Caller, permission: str) -> None:
    if not caller.has_permission(permission):
        what = "personal access token" if caller.personal_token else "API key"
        raise errors.insufficient_permissions(
            f"This {what} does not have the '{permission}' permission."
        )
