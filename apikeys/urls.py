from django.urls import path

from apikeys.views import api_keys, client_tokens, personal_tokens

app_name = "apikeys"

KEYS = "projects/<slug:slug>/settings/api-keys/"

urlpatterns = [
    path(KEYS, api_keys.api_key_list, name="api_key_list"),
    path(KEYS + "new/", api_keys.api_key_create_view, name="api_key_create"),
    path(KEYS + "transfer/", api_keys.api_keys_transfer_view, name="api_keys_transfer"),
    path(KEYS + "<int:key_id>/rename/", api_keys.api_key_rename_view, name="api_key_rename"),
    path(KEYS + "<int:key_id>/revoke/", api_keys.api_key_revoke_view, name="api_key_revoke"),
    path(KEYS + "<int:key_id>/roll/", api_keys.api_key_roll_view, name="api_key_roll"),
    path(
        KEYS + "<int:key_id>/roll/end/",
        api_keys.api_key_end_previous_view,
        name="api_key_end_previous",
    ),
    path(KEYS + "<int:key_id>/suspend/", api_keys.api_key_suspend_view, name="api_key_suspend"),
    path(KEYS + "<int:key_id>/resume/", api_keys.api_key_resume_view, name="api_key_resume"),
    path(
        "projects/<slug:slug>/settings/client-tokens/",
        client_tokens.client_token_list,
        name="client_token_list",
    ),
    path(
        "projects/<slug:slug>/settings/client-tokens/<ctok:public_id>/revoke/",
        client_tokens.client_token_revoke_view,
        name="client_token_revoke",
    ),
    path(
        KEYS + "<int:key_id>/client-tokens/revoke/",
        client_tokens.client_tokens_revoke_all_view,
        name="client_tokens_revoke_all",
    ),
    path("account/tokens/", personal_tokens.personal_token_list, name="personal_token_list"),
    path(
        "account/tokens/new/",
        personal_tokens.personal_token_create_view,
        name="personal_token_create",
    ),
    path(
        "account/tokens/<int:token_id>/networks/",
        personal_tokens.personal_token_networks_view,
        name="personal_token_networks",
    ),
    path(
        "account/tokens/<int:token_id>/rename/",
        personal_tokens.personal_token_rename_view,
        name="personal_token_rename",
    ),
    path(
        "account/tokens/<int:token_id>/regenerate/",
        personal_tokens.personal_token_regenerate_view,
        name="personal_token_regenerate",
    ),
    path(
        "account/tokens/<int:token_id>/revoke/",
        personal_tokens.personal_token_revoke_view,
        name="personal_token_revoke",
    ),
]
