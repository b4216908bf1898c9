"""accounts' pages, a module each (accounts/urls.py names them all):

- home: the site's root, to the project last worked on
- sign_up, sign_in, password: a new account, signing in and out, the password pages
- two_factor, passkeys: the Security page and the sign-in's second step
- email_address: the account's address and its confirmation
- sessions, account_deletion: where you are signed in; deleting your account
- projects: a project's creation and its settings
- members, invitation_link: Settings → Members; the page an invitation's link opens
- audit_log: the audit log pages, a project's and a person's own

The rules and writes they call are beside them in accounts/ (two_factor.py, passkeys.py,
email_verification.py, sessions.py, invitations.py) and in accounts.services."""
