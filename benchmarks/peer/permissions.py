"""djangorestframework-api-key's HasAPIKey, reading `Authorization: Bearer <key>`.

The package reads `Authorization: Api-Key <key>` by default; its documentation's way to
take another keyword is a KeyParser subclass, which is what this is. The dashboard's
clients send Bearer, so the peer takes the very same request.
"""

from __future__ import annotations

from rest_framework_api_key.permissions import HasAPIKey, KeyParser


class BearerKeyParser(KeyParser):
    """Reads the key from `Authorization: Bearer …` instead of the package's `Api-Key …`."""

    keyword = "Bearer"


class HasBearerAPIKey(HasAPIKey):
    """The peer's permission class: HasAPIKey with the Bearer parser, so the peer server takes
    the very request ours does."""

    key_parser = BearerKeyParser()
