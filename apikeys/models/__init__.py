"""The three kinds of token: API keys, client tokens and personal access tokens.

Each stores only a keyed hash of its token (apikeys/tokens.py makes and hashes them).
Where things happen: a token is created in apikeys/services/ (an API key by
api_key_create() in api_keys.py), checked by the API in api/authentication.py, and each
call it makes is logged by usage/writer.py.

A module for each kind, and what they share; Django finds every model here, where
`from apikeys.models import x` names each model, choice and constant below:

- api_keys: ApiKey (`reminix_sk_`), a project's server-side key, and its reads
- client_tokens: ClientToken (`reminix_ct_`), minted by a key or a PAT for a browser
- personal_tokens: PersonalAccessToken (`reminix_pat_`), a person's token
- common: the abstract Token model and TokenQuerySet that all three build on,
  permissions and statuses"""

from apikeys.models.api_keys import NAME_CONSTRAINT, ApiKey, ApiKeyQuerySet, KeyOrder
from apikeys.models.client_tokens import (
    CLIENT_TOKEN_ID_PATTERN,
    CLIENT_TOKEN_MAX_TTL,
    ClientToken,
    ClientTokenQuerySet,
    client_token_public_id,
)
from apikeys.models.common import (
    ALL_PERMISSIONS,
    PAT_ONLY_PERMISSIONS,
    PatPermission,
    Permission,
    PermissionsMixin,
    Token,
    TokenQuerySet,
    TokenStatus,
)
from apikeys.models.personal_tokens import PersonalAccessToken, PersonalAccessTokenQuerySet

__all__ = [
    "ALL_PERMISSIONS",
    "ApiKey",
    "ApiKeyQuerySet",
    "CLIENT_TOKEN_ID_PATTERN",
    "CLIENT_TOKEN_MAX_TTL",
    "ClientToken",
    "ClientTokenQuerySet",
    "KeyOrder",
    "NAME_CONSTRAINT",
    "PAT_ONLY_PERMISSIONS",
    "PatPermission",
    "Permission",
    "PermissionsMixin",
    "PersonalAccessToken",
    "PersonalAccessTokenQuerySet",
    "Token",
    "TokenQuerySet",
    "TokenStatus",
    "client_token_public_id",
]
