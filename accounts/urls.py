from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import audit_views, email_views, sudo, two_factor_views, views
from accounts.passkey_views import (
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
    path("account/signup/", views.signup, name="signup"),
    path("account/login/", views.SignInView.as_view(), name="login"),
    path("account/login/code/", two_factor_views.login_code, name="login_code"),
    path("account/logout/", views.SignOutView.as_view(), name="logout"),
    path("account/confirm/", sudo.sudo_confirm, name="sudo_confirm"),
    path("account/email/", email_views.account_email, name="account_email"),
    path("account/verify/again/", email_views.email_verify_resend, name="email_verify_resend"),
    path("account/verify/<str:token>/", email_views.email_verify, name="email_verify"),
    path("account/security/", two_factor_views.account_security, name="account_security"),
    path("account/security/totp/setup/", two_factor_views.totp_setup, name="totp_setup"),
    path("account/security/totp/confirm/", two_factor_views.totp_confirm, name="totp_confirm"),
    path("account/security/totp/remove/", two_factor_views.totp_remove, name="totp_remove"),
    path(
        "account/security/recovery-codes/",
        two_factor_views.recovery_codes_new,
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
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "account/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "account/password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("account/sessions/", views.account_sessions, name="account_sessions"),
    path("account/delete/", views.account_delete_view, name="account_delete"),
    path("account/audit/", audit_views.user_audit, name="user_audit"),
    path("account/audit/export/", audit_views.user_audit_csv, name="user_audit_csv"),
    path("projects/new/", views.project_create_view, name="project_create"),
    path("projects/<slug:slug>/settings/", views.project_settings, name="project_settings"),
    path("projects/<slug:slug>/settings/origins/", views.project_origins, name="project_origins"),
    path("projects/<slug:slug>/settings/delete/", views.project_delete_view, name="project_delete"),
    path(
        "projects/<slug:slug>/settings/key-policy/",
        views.project_key_policy,
        name="project_key_policy",
    ),
    path(
        "projects/<slug:slug>/settings/two-factor/",
        views.project_two_factor_policy,
        name="project_two_factor_policy",
    ),
    path("projects/<slug:slug>/settings/members/", views.project_members, name="project_members"),
    path(
        "projects/<slug:slug>/settings/members/invite/",
        views.project_invitation_send,
        name="project_invitation_send",
    ),
    path(
        "projects/<slug:slug>/settings/members/invitations/<int:invitation_id>/revoke/",
        views.project_invitation_revoke,
        name="project_invitation_revoke",
    ),
    path(
        "projects/<slug:slug>/settings/members/leave/",
        views.project_leave,
        name="project_leave",
    ),
    path(
        "projects/<slug:slug>/settings/members/<int:membership_id>/role/",
        views.project_member_role,
        name="project_member_role",
    ),
    path(
        "projects/<slug:slug>/settings/members/<int:membership_id>/transfer/",
        views.project_transfer,
        name="project_transfer",
    ),
    path("invitations/<str:token>/", views.invitation_page, name="invitation_accept"),
    path(
        "projects/<slug:slug>/settings/members/<int:membership_id>/remove/",
        views.project_member_remove,
        name="project_member_remove",
    ),
    path("projects/<slug:slug>/settings/audit/", audit_views.project_audit, name="project_audit"),
    path(
        "projects/<slug:slug>/settings/audit/export/",
        audit_views.project_audit_csv,
        name="project_audit_csv",
    ),
]
