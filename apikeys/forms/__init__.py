"""Forms for API keys, client tokens and personal access tokens: validation and the choices
a user makes when creating one.

A module for each kind, and what they share; `from apikeys.forms import x` names every
form, field and choice below, wherever it lives:

- api_keys: a key's create, rename, suspend, roll and hand-over forms
- personal_tokens: a PAT's create, rename and regenerate forms
- client_tokens: the client tokens page's filter
- networks: a key's or PAT's allowed networks
- key_choices: the key a filter picks (client tokens, usage, alerts)
- common: the name field, the expiry and what a new key or PAT is given

A test that patches a name a form looks up (key_name_taken) patches it in the module that
holds the form, not here: this package only re-exports."""

from apikeys.forms.api_keys import (
    ApiKeyCreateForm,
    ApiKeyRenameForm,
    ApiKeyRollForm,
    ApiKeySuspendForm,
    KeysTransferForm,
    NotesField,
    key_name_taken_error,
)
from apikeys.forms.client_tokens import ClientTokenFilterForm
from apikeys.forms.common import EXPIRY_CHOICES, ApiKeyNameField, TokenCreateForm, TokenExpiryForm
from apikeys.forms.key_choices import (
    ENDED_GROUP,
    ENDED_KEYS_LISTED,
    ENDED_KEYS_RECENT,
    ProjectKeyChoiceField,
    ProjectKeyChoiceIterator,
)
from apikeys.forms.networks import AllowedNetworksForm
from apikeys.forms.personal_tokens import (
    PAT_EXPIRY_CHOICES,
    PersonalTokenCreateForm,
    PersonalTokenRegenerateForm,
    PersonalTokenRenameForm,
)

__all__ = [
    "AllowedNetworksForm",
    "ApiKeyCreateForm",
    "ApiKeyNameField",
    "ApiKeyRenameForm",
    "ApiKeyRollForm",
    "ApiKeySuspendForm",
    "ClientTokenFilterForm",
    "ENDED_GROUP",
    "ENDED_KEYS_LISTED",
    "ENDED_KEYS_RECENT",
    "EXPIRY_CHOICES",
    "KeysTransferForm",
    "NotesField",
    "PAT_EXPIRY_CHOICES",
    "PersonalTokenCreateForm",
    "PersonalTokenRegenerateForm",
    "PersonalTokenRenameForm",
    "ProjectKeyChoiceField",
    "ProjectKeyChoiceIterator",
    "TokenCreateForm",
    "TokenExpiryForm",
    "key_name_taken_error",
]
