from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, sign-in and lockout, projects, memberships and allowed browser origins."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (connects the sign-in audit receivers)

        _register_audit_actions()


def _register_audit_actions() -> None:
    from audit.actions import BOTH, USER_ONLY, Action, register_actions, register_group

    # Sign-ins and the account itself belong to no project.
    register_group("account", "Sign-ins and account", prefix="user.", scopes=USER_ONLY)
    register_group("project", "Project settings", prefix="project.", scopes=BOTH)
    register_group("members", "Members", prefix="membership.", scopes=BOTH)
    register_actions(
        Action("user.signed_up", "Signed up", "success"),
        Action("user.deleted", "Account deleted", "danger"),
        Action("user.signed_in", "Signed in"),
        Action("user.signed_out", "Signed out"),
        Action("user.sign_in_failed", "Sign-in failed", "warning"),
        Action("user.password_changed", "Password changed", "warning"),
        Action("user.signed_out_elsewhere", "Signed out everywhere else", "warning"),
        Action("user.session_ended", "Session signed out", "warning"),
        Action("user.two_factor_enabled", "Two-factor authentication turned on", "success"),
        Action("user.two_factor_disabled", "Two-factor authentication turned off", "danger"),
        Action("user.two_factor_passed", "Second factor passed"),
        Action("user.two_factor_failed", "Second factor failed", "warning"),
        Action("user.recovery_code_used", "Recovery code used", "warning"),
        Action("user.recovery_codes_regenerated", "Recovery codes regenerated", "warning"),
        Action("user.email_verified", "Email address confirmed", "success"),
        Action("user.email_change_requested", "Email change asked for"),
        Action("user.email_changed", "Email address changed", "warning"),
        Action("user.passkey_added", "Passkey added", "success"),
        Action("user.passkey_removed", "Passkey removed", "danger"),
        Action("user.passkey_renamed", "Passkey renamed"),
        Action("user.passkey_signed_in", "Signed in with a passkey"),
        Action("user.passkey_failed", "Passkey refused", "warning"),
        Action("user.sudo_passed", "Identity confirmed for a sensitive action"),
        Action("user.sudo_failed", "Identity confirmation failed", "warning"),
        Action("project.created", "Project created", "success"),
        Action("project.renamed", "Project renamed"),
        Action("project.origins_changed", "Allowed origins changed", "warning"),
        Action("project.key_policy_changed", "Key policy changed", "warning"),
        Action("project.two_factor_policy_changed", "Two-factor policy changed", "warning"),
        Action("project.deleted", "Project deleted", "danger"),
        Action("membership.added", "Member added", "success"),
        Action("membership.removed", "Member removed", "danger"),
        Action("membership.left", "Member left", "warning"),
        Action("membership.role_changed", "Member role changed", "warning"),
        Action("membership.ownership_transferred", "Ownership transferred", "warning"),
        Action("membership.invitation_sent", "Invitation sent"),
        Action("membership.invitation_revoked", "Invitation withdrawn"),
        Action("membership.invitation_accepted", "Invitation accepted", "success"),
    )
