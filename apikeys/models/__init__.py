"""API keys, client tokens and personal access tokens, and the log of every API call.

Where things happen: a token is created in apikeys/services.py, checked in
apikeys/authentication.py, and each call it makes is written by apikeys/usage.py into
UsageRecord (one row per call) and the roll-ups beside it (UsageHour, UsageIp).

    tokens.py       ApiKey, ClientToken, PersonalAccessToken (and their shared Token base)
    flags.py        Flag (suspicious activity), and the detector's KeyNetwork and cursor
"""

from apikeys.models.flags import DetectionCursor, Flag, FlagQuerySet, KeyNetwork
from apikeys.models.tokens import (
    ALL_PERMISSIONS,
    ApiKey,
    ApiKeyQuerySet,
    ClientToken,
    ClientTokenQuerySet,
    Permission,
    PermissionsMixin,
    PersonalAccessToken,
    PersonalAccessTokenQuerySet,
    Token,
    TokenStatus,
    client_token_public_id,
)

__all__ = [
    "ALL_PERMISSIONS",
    "ApiKey",
    "ApiKeyQuerySet",
    "ClientToken",
    "ClientTokenQuerySet",
    "DetectionCursor",
    "Flag",
    "FlagQuerySet",
    "KeyNetwork",
    "Permission",
    "PermissionsMixin",
    "PersonalAccessToken",
    "PersonalAccessTokenQuerySet",
    "Token",
    "TokenStatus",
    "client_token_public_id",
]
