"""The dashboard's pages about the API: its reference, readable without signing in."""

from django.urls import path

from api import pages

app_name = "api_docs"

urlpatterns = [
    path("docs/api/", pages.api_reference, name="reference"),
]
