from django.urls import path

from usage import networks, personal_token_usage, views

app_name = "usage"

urlpatterns = [
    path(
        "account/tokens/<int:token_id>/usage/",
        personal_token_usage.personal_token_usage,
        name="personal_token_usage",
    ),
    path(
        "account/tokens/<int:token_id>/usage/export.csv",
        personal_token_usage.personal_token_usage_export,
        name="personal_token_usage_export",
    ),
    path(
        "projects/<slug:slug>/settings/api-keys/<int:key_id>/usage/",
        views.api_key_usage,
        name="api_key_usage",
    ),
    path(
        "projects/<slug:slug>/settings/api-keys/<int:key_id>/usage/addresses/",
        views.api_key_addresses,
        name="api_key_addresses",
    ),
    path(
        "projects/<slug:slug>/settings/api-keys/<int:key_id>/usage/addresses/client-tokens/",
        views.api_key_addresses,
        {"via_client_tokens": True},
        name="api_key_token_addresses",
    ),
    path(
        "projects/<slug:slug>/settings/api-keys/<int:key_id>/networks/",
        networks.api_key_networks,
        name="api_key_networks",
    ),
    path("projects/<slug:slug>/usage/", views.project_usage, name="project_usage"),
    path("projects/<slug:slug>/usage/calls/", views.project_calls_log, name="project_calls"),
    path(
        "projects/<slug:slug>/usage/calls/export.csv",
        views.project_calls_export,
        name="project_calls_export",
    ),
    path(
        "projects/<slug:slug>/usage/calls/<str:request_id>/",
        views.project_call_detail,
        name="project_call",
    ),
    path(
        "projects/<slug:slug>/usage/export.csv",
        views.project_usage_export,
        name="project_usage_export",
    ),
]
