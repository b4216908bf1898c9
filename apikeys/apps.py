from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """The three kinds of token: API keys, client tokens and personal access tokens."""

    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.events import account_deleted, project_deleted
        from apikeys import converters
        from apikeys.services import (
            credentials_revoke_of_deleted_project,
            personal_tokens_revoke_of_deleted_account,
        )

        converters.register()
        _register_audit_actions()
        project_deleted.connect(
            credentials_revoke_of_deleted_project, dispatch_uid="apikeys.deleted_project"
        )
        account_deleted.connect(
            personal_tokens_revoke_of_deleted_account, dispatch_uid="apikeys.deleted_account"
        )


def _register_audit_actions() -> None:
    from audit.actions import BOTH, USER_ONLY, Action, register_actions, register_group

    register_group("api_keys", "API keys", prefix="api_key.", scopes=BOTH)
    register_group("client_tokens", "Client tokens", prefix="client_token.", scopes=BOTH)
    # Personal access tokens belong to a person, not to a project.
    register_group(
        "personal_tokens", "Personal access tokens", prefix="personal_token.", scopes=USER_ONLY
    )
    register_actions(
        Action("api_key.created", "API key created", "success"),
        Action("api_key.renamed", "API key renamed"),
        Action("api_key.revoked", "API key revoked", "danger"),
        Action("api_key.suspended", "API key suspended", "warning"),
        Action("api_key.resumed", "API key resumed"),
        Action("api_key.rolled", "API key rolled", "warning"),
        Action("api_key.previous_secret_ended", "Previous secret of an API key ended"),
        Action("api_key.transferred", "API key handed to another member"),
        Action("api_key.networks_changed", "API key's allowed networks changed", "warning"),
        Action("client_token.created", "Client token created"),
        Action("client_token.revoked", "Client token revoked", "warning"),
        Action("client_token.revoked_all_of_key", "Client tokens of a key revoked", "danger"),
        Action(
            "client_token.revoked_all_of_member",
            "Client tokens of a member who left revoked",  # events from before 2026-12-05
            "warning",
        ),
        Action(
            "client_token.revoked_all_of_project",
            "Client tokens of a deleted project revoked",  # events from before 2026-12-05
            "danger",
        ),
        Action("personal_token.created", "Personal access token created", "success"),
        Action("personal_token.revoked", "Personal access token revoked", "danger"),
        Action("personal_token.renamed", "Personal access token renamed"),
        Action("personal_token.regenerated", "Personal access token regenerated", "warning"),
        Action(
            "personal_token.networks_changed",
            "Personal access token's allowed networks changed",
            "warning",
        ),
        # Told by the detector (alerts/token_networks.py): its person is the actor of record.
        Action(
            "personal_token.new_network",
            "Personal access token used from a new network",
            "warning",
        ),
    )
