"""`<ctok:public_id>` in a URL: only what a client token's id can be. Anything else (a NUL
byte, which PostgreSQL refuses, a token pasted into the path) is a 404 before a view runs."""

from __future__ import annotations

from django.urls import register_converter

from apikeys.models import CLIENT_TOKEN_ID_PATTERN


class ClientTokenIdConverter:
    """The `ctok` path converter (registered in ApiKeysConfig.ready): matches only a client
    token's public id, for the dashboard's revoke URL and `DELETE /v1/client-tokens/{id}`."""

    regex = CLIENT_TOKEN_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def register() -> None:
    register_converter(ClientTokenIdConverter, "ctok")
