from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares and no app owns: typed requests, the client address, window
    counters, keyset paging, CSV streaming, the htmx page-or-fragment helper, filter-form
    fields and display filters. No models, and it imports no app of ours."""

    name = "core"

    def ready(self) -> None:
        from core import after_answer, checks  # noqa: F401 - deploy checks, request signals
