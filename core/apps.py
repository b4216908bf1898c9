from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares and no app owns: typed requests, the client address, window
    counters, keyset paging, CSV streaming, the htmx page-or-fragment helper, filter-form
    fields and display filters. No models, and it imports no app of ours."""

    name = "core"

    def ready(self) -> None:
        # Deploy checks and request signals; the address and text lookups of the call
        # logs' filters.
        from core import after_answer, checks, network_lookup, text_lookup  # noqa: F401

        network_lookup.register()
        text_lookup.register()
