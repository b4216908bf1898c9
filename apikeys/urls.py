from django.urls import path

from apikeys import client_token_views, personal_token_views, views

app_name = "apikeys"

KEYS = "projects/<slug:slug>/settings/api-keys/"

urlpatterns = [
    path(KEYS, views.api_key_list, name="api_key_list"),
    path(KEYS + "new/", views.api_key_create_view, name="api_key_create"),
    path(KEYS + "<int:key_id>/rename/", views.api_key_rename_view, name="api_key_rename"),
    path(KEYS + "<int:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path(
        "projects/<slug:slug>/settings/client-tokens/",
        client_token_views.client_token_list,
        name="client_token_list",
    ),
    path(
        "projects/<slug:slug>/settings/client-tokens/<str:public_id>/revoke/",
        client_token_views.client_token_revoke_view,
        name="client_token_revoke",
    ),
    path(
        KEYS + "<int:key_id>/client-tokens/revoke/",
        client_token_views.client_tokens_revoke_all_view,
        name="client_tokens_revoke_all",
    ),
    path("account/tokens/", personal_token_views.personal_token_list, name="personal_token_list"),
    path(
        "account/tokens/new/",
        personal_token_views.personal_token_create_view,
        name="personal_token_create",
    ),
    path(
        "account/tokens/<int:token_id>/revoke/",
        personal_token_views.personal_token_revoke_view,
        name="personal_token_revoke",
    ),
]
