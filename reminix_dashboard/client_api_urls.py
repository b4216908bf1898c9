"""The Client API under /client: called from browsers with client tokens, behind CORS."""

from django.urls import path, re_path

from agents import api as agents_api
from api import views as api_views
from api.endpoint import client_not_found

urlpatterns = [
    path("token", api_views.client_token_info, name="token"),
    # As /v1's invoke (reminix_dashboard/api_urls.py, agents/converters.py).
    path("agents/<agent_path:name>/invoke", agents_api.client_invoke, name="agent_invoke"),
    re_path(r"^.*$", client_not_found),
]
