"""The floor answers the dashboard's invoke path, so the load tool sends the same request."""

from __future__ import annotations

from django.urls import path

from floor.views import invoke

urlpatterns = [path("v1/agents/<str:name>/invoke", invoke)]
