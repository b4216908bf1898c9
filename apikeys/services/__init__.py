"""Writes for tokens of all three kinds. Each is one transaction with its audit event.

Where a key is created: api_key_create() in api_keys.py. Checked: api/authentication.py.
Logged: usage/writer.py.

The package is apikeys' write interface: `from apikeys.services import x` names every
service, exception and limit below, wherever it lives. A module each for:

- api_keys: API keys (`reminix_sk_`): create, rename, revoke, suspend, resume, roll,
  the hand-over of leavers' keys, and a project's one working key of each name
- client_tokens: client tokens (`reminix_ct_`): mint, revoke one, revoke all of a key's
- personal_tokens: personal access tokens (`reminix_pat_`): create, rename, revoke,
  regenerate
- networks: a key's or PAT's allowed networks
- limits: what every new key or PAT is held to (lifetime, how many, name, permissions,
  agent scope)
- common: what the writes of every kind share (token_revoke, the member check, the
  refusals of a roll)
- deletions: what a deleted project or account does to its tokens (signal receivers)

A test that patches a name a service looks up (audit_record, a helper) patches it in the
module that holds the service, not here: this package only re-exports."""

from apikeys.services.api_keys import (
    ROLL_OVERLAPS,
    SUSPENSION_REASON_MAX,
    KeyEnded,
    KeyNameTaken,
    api_key_create,
    api_key_end_previous_secret,
    api_key_rename,
    api_key_resume,
    api_key_revoke,
    api_key_roll,
    api_key_suspend,
    api_keys_transfer_from_leavers,
    key_name_claim,
    key_name_taken,
)
from apikeys.services.client_tokens import (
    CLIENT_TOKEN_DEFAULT_TTL,
    client_token_create,
    client_token_revoke,
    client_tokens_revoke_for_key,
)
from apikeys.services.common import CannotRoll, RolledMeanwhile, token_revoke
from apikeys.services.deletions import (
    credentials_revoke_of_deleted_project,
    personal_tokens_revoke_of_deleted_account,
)
from apikeys.services.limits import (
    KEY_NAME_MAX,
    LONGEST_LIFETIME,
    MAX_WORKING_KEYS_PER_PROJECT,
    MAX_WORKING_PATS_PER_PERSON,
    NOT_AHEAD,
    TOO_FAR,
    OutOfPolicy,
    TooManyTokens,
    agent_scope_checked,
    expiry_checked,
    expiry_within_limit,
    key_name_normal,
    permissions_or_all,
    token_name_checked,
    too_many_keys_message,
    too_many_pats_message,
    working_keys_full,
    working_pats_full,
)
from apikeys.services.networks import token_networks_set
from apikeys.services.personal_tokens import (
    Revoked,
    personal_token_create,
    personal_token_regenerate,
    personal_token_rename,
    personal_token_revoke,
)

__all__ = [
    "CLIENT_TOKEN_DEFAULT_TTL",
    "CannotRoll",
    "KEY_NAME_MAX",
    "KeyEnded",
    "KeyNameTaken",
    "LONGEST_LIFETIME",
    "MAX_WORKING_KEYS_PER_PROJECT",
    "MAX_WORKING_PATS_PER_PERSON",
    "NOT_AHEAD",
    "OutOfPolicy",
    "ROLL_OVERLAPS",
    "Revoked",
    "RolledMeanwhile",
    "SUSPENSION_REASON_MAX",
    "TOO_FAR",
    "TooManyTokens",
    "agent_scope_checked",
    "api_key_create",
    "api_key_end_previous_secret",
    "api_key_rename",
    "api_key_resume",
    "api_key_revoke",
    "api_key_roll",
    "api_key_suspend",
    "api_keys_transfer_from_leavers",
    "client_token_create",
    "client_token_revoke",
    "client_tokens_revoke_for_key",
    "credentials_revoke_of_deleted_project",
    "expiry_checked",
    "expiry_within_limit",
    "key_name_claim",
    "key_name_normal",
    "key_name_taken",
    "permissions_or_all",
    "personal_token_create",
    "personal_token_regenerate",
    "personal_token_rename",
    "personal_token_revoke",
    "personal_tokens_revoke_of_deleted_account",
    "token_name_checked",
    "token_networks_set",
    "token_revoke",
    "too_many_keys_message",
    "too_many_pats_message",
    "working_keys_full",
    "working_pats_full",
]
