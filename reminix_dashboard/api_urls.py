"""The token-authenticated API under /v1 (shared/CONTRACT.md)."""

from django.urls import path, re_path

from agents import api as agents_api
from alerts.secret_scanning import github_secret_scanning
from api import api_keys
from api import views as api_views
from api.credentials import credentials_revoke
from api.endpoint import api_not_found
from api.openapi import openapi_json

urlpatterns = [
    path("agents", agents_api.agent_list, name="agent_list"),
    path("agents/<str:name>", agents_api.agent_detail, name="agent_detail"),
    # An action names its endpoint, so whatever stands before it is the agent's name, a
    # slash and all (agents/converters.py). The bare agents/<str:name> cannot tell such a
    # name from a path that goes on past an agent's, and leaves it to the catch-all.
    path("agents/<agent_path:name>/invoke", agents_api.invoke, name="agent_invoke"),
    path("agents/<agent_path:name>/chat", agents_api.chat, name="agent_chat"),
    path("execution-logs", agents_api.execution_logs, name="execution_logs"),
    path("client-tokens", api_views.client_token_create_view, name="client_token_create"),
    path("client-tokens/<ctok:public_id>", api_views.client_token_delete, name="client_token"),
    path("api-keys", api_keys.api_keys, name="api_keys"),
    path("api-keys/<str:key_id>", api_keys.api_key_detail, name="api_key"),
    path("api-keys/<str:key_id>/roll", api_keys.api_key_roll_view, name="api_key_roll"),
    path("api-keys/<str:key_id>/suspend", api_keys.api_key_suspend_view, name="api_key_suspend"),
    path("api-keys/<str:key_id>/resume", api_keys.api_key_resume_view, name="api_key_resume"),
    path("projects/current", api_views.project_current, name="project_current"),
    path("user/me", api_views.user_me, name="user_me"),
    path("openapi.json", openapi_json, name="openapi"),
    path("credentials/revoke", credentials_revoke, name="credentials_revoke"),
    path(
        "credentials/github-secret-scanning",
        github_secret_scanning,
        name="github_secret_scanning",
    ),
    re_path(r"^.*$", api_not_found),
]
