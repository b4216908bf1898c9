"""djangorestframework-api-key's HasAPIKey, reading `Authorization: Bearer <key>`.

The package reads `Authorization: Api-Key <key>` by default; its documentation's way to
take another keyword is a KeyParser subclass, which is what this is. The dashboard's
clients send Bearer, so the peer takes the very same request.
"""

from __future__ import annotations

from rest_framework_api_key.permissions import HasAPIKey, KeyParser


class BearerKeyParser(KeyParser):
    keyword = "Bearer"


class HasBearerAPIKey(HasAPIKey):
    key_parser = BearerKeyParser()
