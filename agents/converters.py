"""`<agent_path:name>` in a URL: whatever stands where an agent's name goes, before an
action (/v1/agents/{name}/invoke): slashes (a %2F arrives decoded) and line breaks
included. Such a name reaches the endpoint, which answers `agent_not_found` for it as for
any other name no agent can have, never sending it to the database (agents.api.AGENT);
Django's `str` would leave it to the catch-all's `not_found` as a wrong path, and its
`path` stops at a line break."""

from __future__ import annotations

from django.urls import register_converter


class AgentPathConverter:
    """The `agent_path` converter (registered in AgentsConfig.ready), used where a name comes
    before an action: matches anything, so the endpoint, not the URLconf, refuses a bad name."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def register() -> None:
    register_converter(AgentPathConverter, "agent_path")
