from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """A project's agents: the resource that API keys guard."""

    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.events import project_created
        from agents import converters
        from agents.runtime import executions_check_from_stream, executions_write
        from agents.services import agent_create_starter_for
        from audit.actions import BOTH, Action, register_actions, register_group
        from core import write_behind

        converters.register()
        project_created.connect(agent_create_starter_for, dispatch_uid="agents.starter")
        write_behind.register(
            "execution", executions_write, from_stream=executions_check_from_stream
        )
        register_group("agents", "Agents", prefix="agent.", scopes=BOTH)
        register_actions(
            Action("agent.created", "Agent deployed", "success"),
            Action("agent.updated", "Agent updated", "warning"),
        )
