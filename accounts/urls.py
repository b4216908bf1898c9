from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import sudo
from accounts.views import (
    account_deletion,
    audit_log,
    email_address,
    invitation_link,
    members,
    password,
    projects,
    sessions,
    sign_in,
    sign_up,
    two_factor,
)
from accounts.views.passkeys import (
    passkey_add,
    passkey_login_options,
    passkey_login_verify,
    passkey_register_options,
    passkey_register_verify,
    passkey_remove_view,
    passkey_rename_view,
    passkey_second_options,
    passkey_second_verify,
    passkey_sudo_options,
)

app_name = "accounts"

urlpatterns = [
    path("account/signup/", sign_up.signup, name="signup"),
    path("account/login/", sign_in.SignInView.as_view(), name="login"),
    path("account/login/code/", two_factor.login_code, name="login_code"),
    path("account/logout/", sign_in.SignOutView.as_view(), name="logout"),
    path("account/confirm/", sudo.sudo_confirm, name="sudo_confirm"),
    path("account/email/", email_address.account_email, name="account_email"),
    path("account/verify/again/", email_address.email_verify_resend, name="email_verify_resend"),
    path("account/verify/<str:token>/", email_address.email_verify, name="email_verify"),
    path("account/security/", two_factor.account_security, name="account_security"),
    path("account/security/totp/setup/", two_factor.totp_setup, name="totp_setup"),
    path("account/security/totp/confirm/", two_factor.totp_confirm, name="totp_confirm"),
    path("account/security/totp/remove/", two_factor.totp_remove, name="totp_remove"),
    path(
        "account/security/recovery-codes/",
        two_factor.recovery_codes_new,
        name="recovery_codes_new",
    ),
    path("account/security/passkeys/add/", passkey_add, name="passkey_add"),
    path(
        "account/security/passkeys/options/",
        passkey_register_options,
        name="passkey_register_options",
    ),
    path(
        "account/security/passkeys/verify/",
        passkey_register_verify,
        name="passkey_register_verify",
    ),
    path(
        "account/security/passkeys/<int:passkey_id>/rename/",
        passkey_rename_view,
        name="passkey_rename",
    ),
    path(
        "account/security/passkeys/<int:passkey_id>/remove/",
        passkey_remove_view,
        name="passkey_remove",
    ),
    path(
        "account/security/passkeys/sudo/options/",
        passkey_sudo_options,
        name="passkey_sudo_options",
    ),
    path("account/login/passkey/options/", passkey_login_options, name="passkey_login_options"),
    path("account/login/passkey/verify/", passkey_login_verify, name="passkey_login_verify"),
    path(
        "account/login/code/passkey/options/",
        passkey_second_options,
        name="passkey_second_options",
    ),
    path(
        "account/login/code/passkey/verify/",
        passkey_second_verify,
        name="passkey_second_verify",
    ),
    path("account/password/", password.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/reset/", password.PasswordResetView.as_view(), name="password_reset"),
    path(
        "account/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "account/password/reset/<uidb64>/<token>/",
        password.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("account/sessions/", sessions.account_sessions, name="account_sessions"),
    path("account/delete/", account_deletion.account_delete_view, name="account_delete"),
    path("account/audit/", audit_log.user_audit, name="user_audit"),
    path("account/audit/export/", audit_log.user_audit_csv, name="user_audit_csv"),
    path("projects/new/", projects.project_create_view, name="project_create"),
    path("projects/<slug:slug>/settings/", projects.project_settings, name="project_settings"),
    path(
        "projects/<slug:slug>/settings/origins/",
        projects.project_origins,
        name="project_origins",
    ),
    path(
        "projects/<slug:slug>/settings/delete/",
        projects.project_delete_view,
        name="project_delete",
    ),
    path(
        "projects/<slug:slug>/settings/key-policy/",
        projects.project_key_policy,
        name="project_key_policy",
    ),
    path(
        "projects/<slug:slug>/settings/two-factor/",
        projects.project_two_factor_policy,
        name="project_two_factor_policy",
    ),
    path("projects/<slug:slug>/settings/members/", members.project_members, name="project_members"),
    path(
        "projects/<slug:slug>/settings/members/invite/",
        members.project_invitation_send,
        name="project_invitation_send",
    ),
    path(
        "projects/<slug:slug>/settings/members/invitations/<int:invitation_id>/revoke/",
        members.project_invitation_revoke,
        name="project_invitation_revoke",
    ),
    path(
        "projects/<slug:slug>/settings/members/leave/",
        members.project_leave,
        name="project_leave",
    ),
    path(
        "projects/<slug:slug>/settings/members/<int:membership_id>/role/",
        members.project_member_role,
        name="project_member_role",
    ),
    path(
        "projects/<slug:slug>/settings/members/<int:membership_id>/transfer/",
        members.project_transfer,
        name="project_transfer",
    ),
    path("invitations/<str:token>/", invitation_link.invitation_page, name="invitation_accept"),
    path(
        "projects/<slug:slug>/settings/members/<int:membership_id>/remove/",
        members.project_member_remove,
        name="project_member_remove",
    ),
    path("projects/<slug:slug>/settings/audit/", audit_log.project_audit, name="project_audit"),
    path(
        "projects/<slug:slug>/settings/audit/export/",
        audit_log.project_audit_csv,
        name="project_audit_csv",
    ),
]
