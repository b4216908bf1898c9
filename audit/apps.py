from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit trail: who did what to which thing, when and from where. Append-only.

    Every app registers the actions it writes (audit/actions.py) in its own
    AppConfig.ready(); audit_record() refuses any other. The trail's two pages, a project's
    and a person's, are accounts' pages (accounts/views/audit_log.py): they need the
    "member of this project" precondition, and accounts writes audit events, so audit sits
    below it.
    """

    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"
